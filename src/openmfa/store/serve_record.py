"""The serve record: how ``openmfa serve`` last ran from a data directory
(``openmfa.serve.json`` in it), written by the node and read to run it again the same way
(``node.control``), to find where it listened and where relative paths were opened from."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SERVE_RECORD = "openmfa.serve.json"


@dataclass
class Invocation:
    """How ``openmfa serve`` ran: enough to run it again the same way."""

    pid: int
    argv: list[str]
    """The arguments after the program (``["serve", "--data-dir", ...]``)."""
    cwd: str
    env: dict[str, str]
    url: str
    """The SDK's base URL where it listened (``http://127.0.0.1:8480``)."""
    radius: str = ""
    """The RADIUS address it listened on ("" when RADIUS was off or not known)."""
    unit: str = ""
    """The service-manager unit it ran under ("" when none)."""
    source: str = field(default="serve")
    """``serve`` (written by the node itself) or ``proc`` (read from /proc before a stop)."""

    @classmethod
    def load(cls, path: Path) -> Invocation | None:
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.replace(tmp, path)
