"""A node upgrades itself when the farm orchestrator asks (``POST /v1/farm/upgrade``).

The node finds its installation from its install record, the way ``openmfa upgrade`` does, and
starts that command detached from itself (the upgrade stops and restarts this very server).
The orchestrator then watches ``/v1/farm/hello`` for the new release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import InvalidInput, NotFound
from ..install.record import InstallRecord, record_path
from ..store.database import Store


def start_upgrade(store: Store, bundle: Path) -> dict[str, object]:
    record = record_path(None)
    if not record.exists():
        raise InvalidInput(
            f"this node has no install record at {record}; install it with `openmfa install` "
            "(or start it with OPENMFA_INSTALL_RECORD naming its record)"
        )
    rec = InstallRecord.load(record)
    if Path(rec.data_dir).resolve() != store.data_dir.root.resolve():
        raise InvalidInput(f"the install record {record} is for another data directory")
    if not bundle.is_file() and not bundle.is_dir():
        raise NotFound(f"no bundle at {bundle} on this node's host; copy it there first")
    log_path = rec.root_path / "farm-upgrade.log"
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("openmfa")),
                "upgrade",
                "--from-bundle",
                str(bundle),
                "--yes",
                "--record",
                str(record),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "OPENMFA_INSTALL_RECORD": str(record)},
        )
    return {"pid": proc.pid, "log": str(log_path)}
