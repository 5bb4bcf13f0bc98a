"""The install record: where an installation lives and what it has (the role the Windows
registry played for the original installer). ``upgrade`` and ``bundle`` find everything here,
so no path has to be typed twice."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from ..errors import ConfigError, NotFound

DEFAULT_RECORD = Path("/etc/openmfa/install.toml")


def record_path(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get("OPENMFA_INSTALL_RECORD")
    return Path(env) if env else DEFAULT_RECORD


@dataclass
class InstallRecord:
    root: str
    version: str
    components: list[str]
    data_dir: str
    url_prefixes: dict[str, str] = field(default_factory=lambda: {"sdk": "/"})
    service_names: dict[str, str] = field(default_factory=lambda: {"server": "openmfa-server"})
    installed_at: float = field(default_factory=time.time)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> InstallRecord:
        if not path.exists():
            raise NotFound(
                f"no install record at {path}; pass --record FILE (or set "
                "OPENMFA_INSTALL_RECORD), or install first with `openmfa install`"
            )
        try:
            data = tomlkit.parse(path.read_text()).unwrap()
            return cls(**data)
        except Exception as exc:
            raise ConfigError(
                f"install record {path} is unreadable ({exc}); restore it from "
                "the backups folder of the installation"
            ) from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = tomlkit.document()
        doc.add(tomlkit.comment("OpenMFA install record, written by `openmfa install|upgrade`."))
        for key, value in asdict(self).items():
            doc[key] = value
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(tomlkit.dumps(doc))
        os.replace(tmp, path)

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def release_dir(self, version: str | None = None) -> Path:
        return self.root_path / "releases" / (version or self.version)


def last_upgrade(record: InstallRecord) -> dict[str, Any] | None:
    """The upgrade ``openmfa rollback`` undoes: the newest one, if its release still runs."""
    done = [h for h in record.history if h.get("action") == "upgrade"]
    if not done or done[-1].get("to") != record.version:
        return None
    return done[-1]
