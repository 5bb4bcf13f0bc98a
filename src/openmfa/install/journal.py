"""The upgrade's journal (``ROOT/upgrade-journal.json``): each step of ``openmfa upgrade``
written down, durably, before the next begins, so a crash at any point is resumed or rolled
back by running the command again."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

JOURNAL = "upgrade-journal.json"


@dataclass
class Journal:
    from_version: str
    to_version: str
    source: str
    done: list[str] = field(default_factory=list)
    backup_id: str = ""
    server_was_running: bool = False
    mobile_was_running: bool = False
    portal_was_running: bool = False
    console_was_running: bool = False
    report: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
