"""``portal.toml``: the User Portal's settings over its shipped defaults."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..service_config import basics, read_settings, relative
from . import forward_auth
from .forward_auth import ForwardAuthConfig

CONFIG_NAME = "portal.toml"
PACKAGED_THEMES = Path(str(resources.files("openmfa").joinpath("themes")))


def default_text() -> str:
    return resources.files("openmfa.portal").joinpath("default_portal.toml").read_text("utf-8")


@dataclass(frozen=True)
class PortalConfig:
    host: str
    port: int
    prefix: str
    nodes: list[str]
    api_key: str
    ca_file: str
    theme: str
    themes_dir: Path
    languages: tuple[str, ...]
    idle_seconds: float
    absolute_seconds: float
    secure: str
    trusted_proxies: frozenset[str]
    attempts_per_minute: int
    path: Path | None = None
    forward_auth: ForwardAuthConfig | None = None
    name: str = ""
    """Its name in the farm's inventory ("" reports nothing)."""
    session_key: bytes | None = None
    """Shared by the portal hosts: a signed-in session is carried, sealed, in a cookie any of
    them restores (a host restarted by an upgrade, or another host, keeps the person in)."""


def load(path: Path | None, *, api_key: str | None = None) -> PortalConfig:
    """``api_key``: given by the caller (the portal mounted in ``openmfa serve``)."""
    sections = read_settings(default_text(), path, CONFIG_NAME)
    values = sections["portal"]
    if api_key is not None:
        values = {**values, "api_key": api_key, "api_key_file": ""}
    b = basics(values, "portal", path, "portal")
    themes_dir = relative(path, str(values["themes_dir"])) or PACKAGED_THEMES
    theme = str(values["theme"])
    if not theme or "/" in theme or theme.startswith("."):
        raise ConfigError(f"[portal] theme {theme!r} must be the name of a folder of themes_dir")
    if theme != "Default" and not (themes_dir / theme).is_dir():
        raise ConfigError(
            f"[portal] theme {theme!r}: there is no folder {themes_dir / theme}; copy "
            f"{PACKAGED_THEMES / 'Default'} there and change what you like"
        )
    languages = tuple(str(x) for x in values["languages"])
    from .i18n import AVAILABLE

    unknown = [x for x in languages if x not in AVAILABLE]
    if not languages or unknown:
        raise ConfigError(
            f"[portal] languages: {', '.join(unknown) or 'none given'}; choose among "
            + ", ".join(AVAILABLE)
        )
    secure = str(values["secure"])
    if secure not in ("auto", "always", "never"):
        raise ConfigError(f"[portal] secure = {secure!r} is not one of 'auto', 'always', 'never'")
    for key in ("idle_minutes", "absolute_minutes", "attempts_per_minute"):
        if values[key] <= 0:
            raise ConfigError(f"[portal] {key} must be greater than 0")
    return PortalConfig(
        host=b.host,
        port=b.port,
        prefix=b.prefix,
        nodes=b.nodes,
        api_key=b.api_key,
        ca_file=b.ca_file,
        name=b.name,
        theme=theme,
        themes_dir=themes_dir,
        languages=languages,
        idle_seconds=float(values["idle_minutes"]) * 60,
        absolute_seconds=float(values["absolute_minutes"]) * 60,
        secure=secure,
        trusted_proxies=frozenset(str(x) for x in values["trusted_proxies"]),
        attempts_per_minute=int(values["attempts_per_minute"]),
        path=path,
        forward_auth=forward_auth.load(sections["forward_auth"], path),
        session_key=(
            forward_auth.read_key(
                "[portal] session_key_file", str(values["session_key_file"]), path
            )
            if values["session_key_file"]
            else None
        ),
    )
