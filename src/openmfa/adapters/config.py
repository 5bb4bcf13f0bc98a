"""``adapter.toml``: which node an identity provider calls, with which key, and how each
identity provider is registered. Read like ``portal.toml`` (shipped defaults, values checked)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..errors import ConfigError
from ..service_config import NAME, check_prefix, read_settings, relative

CONFIG_VERSION = 1
IDPS = ("lemonldap", "nginx")
"""The schema this release writes (``[adapter] config_version``); it reads this one only."""


def default_text() -> str:
    return files("openmfa.adapters").joinpath("default_adapter.toml").read_text("utf-8")


@dataclass(frozen=True)
class LemonLdapSettings:
    cli: str
    ini: str
    label: str
    level: int
    protect: list[str]
    canary: str = ""
    canary_seconds: float = 60.0
    grace_seconds: float = 300.0


@dataclass(frozen=True)
class NginxSettings:
    dir: Path
    portals: list[str]
    prefix: str
    nginx: list[str]
    cache_seconds: int = 5
    cache_dir: str = "/var/cache/nginx/openmfa"
    cookie_name: str = "openmfa_auth"


@dataclass(frozen=True)
class AdapterConfig:
    node_url: str
    api_key: str
    ca_file: str
    lemonldap: LemonLdapSettings
    nginx: NginxSettings
    name: str = ""
    """This host's name in the farm's inventory ("": the agent has nothing to report as)."""
    idps: tuple[str, ...] = ()
    """The identity providers registered from this host (the agent's to watch and move)."""


def load(path: Path | None) -> AdapterConfig:
    values = read_settings(default_text(), path, "adapter.toml")
    a, llng, web = values["adapter"], values["lemonldap"], values["nginx"]
    portals = [str(p) for p in web["portals"]]
    for p in portals:
        host, _, port = p.rpartition(":")
        if not host or not port.isdigit() or any(c in p for c in " ;{}#/"):
            raise ConfigError(f"[nginx] portals: {p!r} is not HOST:PORT")
    if not portals or not web["nginx"]:
        raise ConfigError("[nginx] portals and nginx must not be empty")
    if not 0 <= web["cache_seconds"] <= 300:
        raise ConfigError("[nginx] cache_seconds must be between 0 and 300")
    if not str(web["cookie_name"]).replace("_", "").replace("-", "").isalnum():
        raise ConfigError("[nginx] cookie_name must be letters, digits, - and _")
    if any(c in str(web["cache_dir"]) for c in " ;{}#"):
        raise ConfigError("[nginx] cache_dir must be a plain path")
    if a["config_version"] != CONFIG_VERSION:
        raise ConfigError(
            f"[adapter] config_version {a['config_version']} is not {CONFIG_VERSION}, the one "
            "this release reads; `openmfa upgrade` merges the file forward"
        )
    url = str(a["node_url"]).rstrip("/")
    if not url.startswith(("http://", "https://")) or "@" in url:
        raise ConfigError("[adapter] node_url must be the SDK's URL (http:// or https://), no key")
    key = str(a["api_key"])
    key_file = relative(path, str(a["api_key_file"]))
    if key_file is not None:
        try:
            key = key_file.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read [adapter] api_key_file {key_file}: {exc.strerror}"
            ) from None
    name = str(a["name"])
    if name and not NAME.fullmatch(name):
        raise ConfigError(
            "[adapter] name: letters, digits, '.', '_' and '-' (as in HAProxy's server names)"
        )
    idps = tuple(str(i) for i in a["idps"])
    unknown = sorted(set(idps) - set(IDPS))
    if unknown:
        raise ConfigError(f"[adapter] idps: {', '.join(unknown)}? Choose from {', '.join(IDPS)}")
    if llng["canary_seconds"] < 0 or llng["grace_seconds"] < 0:
        raise ConfigError("[lemonldap] canary_seconds and grace_seconds must not be negative")
    if not 1 <= int(llng["level"]) <= 100:
        raise ConfigError("[lemonldap] level must be between 1 and 100")
    return AdapterConfig(
        url,
        key,
        str(a["ca_file"]),
        LemonLdapSettings(
            str(llng["cli"]),
            str(llng["ini"]),
            str(llng["label"]),
            int(llng["level"]),
            [str(h) for h in llng["protect"]],
            str(llng["canary"]),
            float(llng["canary_seconds"]),
            float(llng["grace_seconds"]),
        ),
        NginxSettings(
            relative(path, str(web["dir"])) or Path(str(web["dir"])),
            portals,
            check_prefix("nginx", str(web["prefix"])),
            [str(x) for x in web["nginx"]],
            int(web["cache_seconds"]),
            str(relative(path, str(web["cache_dir"])) or web["cache_dir"]),
            str(web["cookie_name"]),
        ),
        name,
        idps,
    )
