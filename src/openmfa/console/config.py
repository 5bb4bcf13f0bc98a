"""``console.toml``: the administration console's settings over its shipped defaults."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..portal.forward_auth import read_key
from ..service_config import basics, read_settings

CONFIG_NAME = "console.toml"
LANGUAGES = ("en", "nl")


def default_text() -> str:
    return resources.files("openmfa.console").joinpath("default_console.toml").read_text("utf-8")


@dataclass(frozen=True)
class ConsoleConfig:
    host: str
    port: int
    prefix: str
    nodes: list[str]
    api_key: str
    ca_file: str
    languages: tuple[str, ...]
    idle_seconds: float
    absolute_seconds: float
    recent_seconds: float
    secure: str
    trusted_proxies: frozenset[str]
    attempts_per_minute: int
    session_key: bytes | None = None
    name: str = ""
    path: Path | None = None


def load(path: Path | None, *, api_key: str | None = None, prefix: str = "") -> ConsoleConfig:
    """``api_key``, ``prefix``: given by the caller (the console inside ``openmfa serve``)."""
    values = read_settings(default_text(), path, CONFIG_NAME)["console"]
    if api_key is not None:
        values = {**values, "api_key": api_key, "api_key_file": ""}
    if prefix:
        values = {**values, "prefix": prefix}
    b = basics(values, "console", path, "console")
    languages = tuple(str(x) for x in values["languages"])
    unknown = [x for x in languages if x not in LANGUAGES]
    if not languages or unknown:
        raise ConfigError(
            f"[console] languages: {', '.join(unknown) or 'none given'}; choose among "
            + ", ".join(LANGUAGES)
        )
    secure = str(values["secure"])
    if secure not in ("auto", "always", "never"):
        raise ConfigError(f"[console] secure = {secure!r} is not one of 'auto', 'always', 'never'")
    for key in ("idle_minutes", "absolute_minutes", "recent_minutes", "attempts_per_minute"):
        if values[key] <= 0:
            raise ConfigError(f"[console] {key} must be greater than 0")
    key_file = str(values["session_key_file"])
    return ConsoleConfig(
        host=b.host,
        port=b.port,
        prefix=b.prefix,
        nodes=b.nodes,
        api_key=b.api_key,
        ca_file=b.ca_file,
        name=b.name,
        languages=languages,
        idle_seconds=float(values["idle_minutes"]) * 60,
        absolute_seconds=float(values["absolute_minutes"]) * 60,
        recent_seconds=float(values["recent_minutes"]) * 60,
        secure=secure,
        trusted_proxies=frozenset(str(x) for x in values["trusted_proxies"]),
        attempts_per_minute=int(values["attempts_per_minute"]),
        session_key=read_key("[console] session_key_file", key_file, path) if key_file else None,
        path=path,
    )
