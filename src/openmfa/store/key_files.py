"""Every key file a host holds, found in one place: the data key, and each key file that
``server.toml`` and the services' configurations beside it (``portal.toml``, ``mobile.toml``,
``adapter.toml``) name, and the release keys the installation pins.

Invariant owned here: a key file a node or one of its services reads is listed here, with its
path resolved the way that service resolves it — a name in a service's file is beside that file
(``service_config.relative``); the node's TLS key is opened from the directory ``openmfa serve``
ran in; the pinned release keys are in the installation's root. Backups (``backups``) copy
what this lists and restore it where it belongs, so a key file added later is added to
``SERVICE_KEYS`` (or ``find``) once, and is backed up from then on.

Only paths are read and returned here: never a key's contents.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CONFIG_NAME, Config
from ..errors import ConfigError, OpenMfaError
from .database import KEY_FILE, DataDir
from .serve_record import SERVE_RECORD, Invocation

DATA_KEY = "data-key"
RELEASE_KEYS = "release-keys"

SERVICE_CONFIGS = {
    "portal": "openmfa.portal.config",
    "mobile": "openmfa.mobile.config",
    "adapter": "openmfa.adapters.config",
    "console": "openmfa.console.config",
}
"""The services' files beside server.toml (``NAME.toml``) and the module with each one's
shipped defaults (``default_text``)."""
CONFIG_NAMES = (CONFIG_NAME, *(f"{service}.toml" for service in SERVICE_CONFIGS))
"""The configuration files of a data directory a backup keeps."""


@dataclass(frozen=True)
class Named:
    """A key file setting of a service's configuration."""

    id: str
    """Its stable name: in a backup (``keys/<id>``) and in what ``backup`` prints."""
    service: str
    section: str
    setting: str
    what: str
    switch: str = ""
    """A setting of the same section that turns its use on (empty: used whenever named)."""


SERVICE_KEYS = (
    Named("portal-api-key", "portal", "portal", "api_key_file", "the portal's API key"),
    Named("portal-session-key", "portal", "portal", "session_key_file", "the portal's session key"),
    Named(
        "portal-forward-auth-key",
        "portal",
        "forward_auth",
        "key_file",
        "the forward-auth key",
        switch="enabled",
    ),
    Named("mobile-api-key", "mobile", "mobile", "api_key_file", "the mobile service's API key"),
    Named(
        "mobile-vapid-key", "mobile", "mobile", "webpush_vapid_key_file", "the WebPush VAPID key"
    ),
    Named("adapter-api-key", "adapter", "adapter", "api_key_file", "the adapter's API key"),
    Named("console-api-key", "console", "console", "api_key_file", "the console's API key"),
    Named(
        "console-session-key", "console", "console", "session_key_file", "the console's session key"
    ),
)
"""The key files the services' configurations name. A portal or console inside ``openmfa
serve`` (``[portal]``/``[console] web_config`` of server.toml) names its session and
forward-auth keys alike (its API key lives in memory)."""


@dataclass(frozen=True)
class KeyFile:
    id: str
    what: str
    """For people: what it is, and which setting names it (never its contents)."""
    path: Path
    """Where it is now (absolute)."""
    belongs: str
    """Where it goes back: relative to the data directory (it moves with it: the data key, or
    a relative name in a file of the data directory), else the absolute path."""
    used: bool = True
    """The service reads it as configured (False: named, but that use is turned off)."""

    @property
    def inside(self) -> bool:
        return not Path(self.belongs).is_absolute()


@dataclass
class Found:
    keys: list[KeyFile] = field(default_factory=list)
    configs: list[Path] = field(default_factory=list)
    """server.toml and the services' files beside it that exist."""
    notes: list[str] = field(default_factory=list)
    """What could not be looked at, in words (no values from the files)."""

    def add(self, key: KeyFile) -> None:
        if all(k.path != key.path for k in self.keys):
            self.keys.append(key)


def _abs(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


def _belongs(root: Path, path: Path, moves: bool) -> str:
    """``path`` relative to ``root`` when it moves with the data directory and is inside it."""
    if moves and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


def find(dd: DataDir, config: Config, install_root: Path | None = None) -> Found:
    """The key files of the data directory ``dd`` (whose server.toml is ``config``) and of its
    services; ``install_root``: the installation's root (None: the install record's, when it
    records this data directory)."""
    root = _abs(dd.root)
    found = Found()
    found.add(KeyFile(DATA_KEY, "the data key", root / KEY_FILE, KEY_FILE))
    if dd.config_file.exists():
        found.configs.append(dd.config_file)
    tls = str(config.get("server", "tls_key"))
    if tls:
        where = _abs(_serve_cwd(dd) / tls)
        found.add(
            KeyFile(
                "server-tls-key",
                "the node's TLS key (server.toml [server] tls_key)",
                where,
                _belongs(root, where, False),
            )
        )
    for service in SERVICE_CONFIGS:
        path = dd.root / f"{service}.toml"
        if path.exists():
            found.configs.append(path)
            _service(found, root, service, path, "", True)
    for inside in ("portal", "console"):
        web = str(config.get(inside, "web_config"))
        if web:
            path = _abs(Path(web) if Path(web).is_absolute() else dd.root / web)
            if path.exists() and path != _abs(dd.root / f"{inside}.toml"):
                _service(found, root, inside, path, "serve-", not Path(web).is_absolute())
    pinned = install_root if install_root is not None else installed_root(dd)
    if pinned is not None:
        from ..install.signing import TRUST_FILE

        where = release_keys_file(pinned)
        if where.exists():
            what = f"the pinned release keys ({TRUST_FILE} of the installation)"
            found.add(KeyFile(RELEASE_KEYS, what, where, str(where)))
    return found


def release_keys_file(install_root: Path) -> Path:
    """Where the installation at ``install_root`` pins its release keys (the only place a
    backup puts them back)."""
    from ..install.signing import TRUST_FILE

    return _abs(install_root / TRUST_FILE)


def _service(found: Found, root: Path, service: str, path: Path, tag: str, moves: bool) -> None:
    """The key files ``path`` (a ``service``.toml) names; ``moves``: the file itself moves with
    the data directory (so do the files it names relatively)."""
    from ..service_config import read_settings

    module: Any = importlib.import_module(SERVICE_CONFIGS[service])
    try:
        values = read_settings(module.default_text(), path, path.name)
    except ConfigError:
        found.notes.append(
            f"{path} could not be read as a {service} configuration: the key files it names "
            f"are not known (`openmfa {service} ...` says what is wrong with it)"
        )
        return
    for n in SERVICE_KEYS:
        if n.service != service or (tag and n.setting == "api_key_file"):
            continue
        name = str(values[n.section][n.setting])
        if not name:
            continue
        given = Path(name)
        where = _abs(given if given.is_absolute() else path.parent / given)
        used = not n.switch or bool(values[n.section][n.switch])
        if not used and not where.exists():
            continue  # the shipped name of a key the service does not use: nothing to keep
        setting = f"{path.name} [{n.section}] {n.setting}"
        found.add(
            KeyFile(
                tag + n.id,
                f"{n.what} ({setting})",
                where,
                _belongs(root, where, moves and not given.is_absolute()),
                used,
            )
        )


def _serve_cwd(dd: DataDir) -> Path:
    """Where ``openmfa serve`` last ran (relative TLS paths are opened from there); else the
    data directory."""
    ran = Invocation.load(dd.root / SERVE_RECORD)
    if ran is not None and ran.cwd and Path(ran.cwd).is_dir():
        return Path(ran.cwd)
    return dd.root


def installed_root(dd: DataDir) -> Path | None:
    """The root of the installation whose install record (``$OPENMFA_INSTALL_RECORD``, else
    /etc/openmfa/install.toml) names ``dd`` as its data directory; None otherwise."""
    from ..install.record import InstallRecord, record_path

    path = record_path(None)
    if not path.exists():
        return None
    try:
        record = InstallRecord.load(path)
    except OpenMfaError:
        return None
    if _abs(Path(record.data_dir)) != _abs(dd.root):
        return None
    return record.root_path
