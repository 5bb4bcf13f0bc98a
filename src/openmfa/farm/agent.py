"""A node upgrades or rolls itself back when the farm orchestrator asks
(``POST /v1/farm/upgrade``, ``POST /v1/farm/rollback``).

The node finds its installation from its install record, the way ``openmfa upgrade`` does, and
starts that command detached from itself (it stops and restarts this very server). Under a
service manager the command runs as a unit of its own (``systemd-run``): stopping the node's
unit stops every process in it, and the upgrade must outlive the node it restarts. The
orchestrator then watches ``/v1/farm/hello`` for the release it expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InstallFailed, InvalidInput, NotFound, OpenMfaError
from ..install.record import InstallRecord, record_path
from ..install.upgrader import JOURNAL, last_upgrade
from ..node.control import service_unit
from ..store.backups import Backups
from ..store.database import DataDir, Store
from . import membership
from .wire import RollbackPlan


def start_upgrade(store: Store, bundle: Path) -> dict[str, object]:
    if not bundle.is_file() and not bundle.is_dir():
        raise NotFound(f"no bundle at {bundle} on this node's host; copy it there first")
    return _start(store, "upgrade", "--from-bundle", str(bundle))


def start_rollback(store: Store) -> dict[str, object]:
    plan = rollback_plan(store)
    if plan is None:
        raise InvalidInput("this node has no upgrade to roll back (see `openmfa farm status`)")
    return {**_start(store, "rollback"), "to": plan.to}


def upgrading(store: Store) -> bool:
    """Whether ``openmfa upgrade`` is under way here (its journal exists until it is done:
    a node that answers on the new release may still be verifying, or about to roll back)."""
    try:
        return (InstallRecord.load(_record(store)).root_path / JOURNAL).exists()
    except OpenMfaError:
        return False


def rollback_plan(store: Store) -> RollbackPlan | None:
    """What ``openmfa rollback`` would do here: the release it goes back to and the data format
    of the backup taken before the upgrade; None when there is nothing to roll back."""
    try:
        last = last_upgrade(InstallRecord.load(_record(store)))
        if last is None:
            return None
        info = Backups(store.data_dir, store.data_dir.config()).get(str(last["backup"]))
    except OpenMfaError:  # no install record, an unreadable one, or the backup is gone
        return None
    return RollbackPlan(to=str(last["from"]), format=info.data_format)


def _record(store: Store) -> Path:
    record = record_path(None)
    if not record.exists():
        raise InvalidInput(
            f"this node has no install record at {record}; install it with `openmfa install` "
            "(or start it with OPENMFA_INSTALL_RECORD naming its record)"
        )
    rec = InstallRecord.load(record)
    if Path(rec.data_dir).resolve() != store.data_dir.root.resolve():
        raise InvalidInput(f"the install record {record} is for another data directory")
    return record


def command_line(
    record: Path, log_path: Path, command: str, *args: str, unit: str = ""
) -> list[str]:
    """The command that runs ``openmfa COMMAND`` for this node (outside ``unit``, if any)."""
    argv = [
        str(Path(sys.executable).with_name("openmfa")),
        command,
        *args,
        "--yes",
        "--record",
        str(record),
    ]
    if not unit:
        return argv
    return [
        "systemd-run",
        f"--unit=openmfa-farm-{command}-{int(time.time())}",
        "--collect",
        "--quiet",
        f"--property=StandardOutput=append:{log_path}",
        f"--property=StandardError=append:{log_path}",
        f"--setenv=OPENMFA_INSTALL_RECORD={record}",
        "--",
        *argv,
    ]


def _start(store: Store, command: str, *args: str) -> dict[str, object]:
    proc, log_path = launch(_record(store), command, *args)
    return {"pid": proc.pid, "log": str(log_path)}


def launch(record: Path, command: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``openmfa COMMAND ARGS --yes --record RECORD`` detached from this process (which
    the command stops and starts again), logging to ``ROOT/farm-COMMAND.log``."""
    log_path = InstallRecord.load(record).root_path / f"farm-{command}.log"
    unit = service_unit(dict(os.environ))
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            command_line(record, log_path, command, *args, unit=unit),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "OPENMFA_INSTALL_RECORD": str(record)},
        )
    return proc, log_path


def data_comes_back(dd: DataDir, last: dict[str, Any]) -> bool:
    """May this node go back to the release before ``last`` now, and does its data come
    back from the pre-upgrade backup (True) or stay (a shared database: False)?"""
    try:
        store = Store.open(dd)
    except OpenMfaError:
        return True  # a data file this release cannot open: the backup is the way back
    try:
        m = membership.load(store)
        fmt = membership.farm_format(store) if m is not None else 0
    finally:
        store.close()
    if m is None:
        return True
    before = Backups(dd, dd.config()).get(str(last["backup"])).data_format
    if fmt > before:
        raise InstallFailed(
            f"the farm's data format moved to {fmt} (`openmfa farm finalize`) after this "
            f"node was upgraded; {last['from']} was running format {before} data, and the "
            "other nodes hold format "
            f"{fmt}. Nothing was changed. Going back now means restoring every node from "
            "its pre-upgrade backup, losing every change since (`openmfa backup restore`)"
        )
    if m.farm_role.must_hand_over:
        raise InstallFailed(
            "this node is the farm's master: hand the role to another node first "
            "(`openmfa farm promote NODE`), or roll the whole farm back at once with "
            "`openmfa farm rollback` on the master. Nothing was changed"
        )
    return not m.shared  # a subordinate's copy comes back and catches up from the master


def install_state() -> tuple[bool, str]:
    """This host's installation (found from its install record): whether ``openmfa upgrade``
    is under way, and the release ``openmfa rollback`` would go back to ("" when none)."""
    try:
        rec = InstallRecord.load(record_path(None))
        last = last_upgrade(rec)
    except OpenMfaError:
        return False, ""
    return (rec.root_path / JOURNAL).exists(), str(last["from"]) if last else ""
