"""``mobile.toml``: the Mobile App Web Service's settings over its shipped defaults."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..config import merge, parse_listen
from ..errors import ConfigError

CONFIG_NAME = "mobile.toml"


def default_text() -> str:
    return resources.files("openmfa.mobile").joinpath("default_mobile.toml").read_text("utf-8")


@dataclass(frozen=True)
class MobileConfig:
    host: str
    port: int
    prefix: str
    nodes: list[str]
    api_key: str
    long_poll_seconds: float
    ca_file: str
    path: Path | None
    webpush_vapid_key_file: Path | None = None
    webpush_subject: str = ""
    webpush_allow_http: bool = False


def load(path: Path | None) -> MobileConfig:
    import tomllib

    base = tomllib.loads(default_text())
    given: dict[str, object] = {}
    if path is not None:
        try:
            given = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
    values = merge(base, given, str(path or CONFIG_NAME))["mobile"]
    host, port = parse_listen(values["listen"])
    prefix = "/" + str(values["prefix"]).strip("/")
    if prefix == "/" or not all(
        part.isidentifier() or part.replace("-", "").isalnum()
        for part in prefix.strip("/").split("/")
    ):
        raise ConfigError(f"[mobile] prefix {values['prefix']!r} must be a path like /mobile")
    nodes = [str(n).rstrip("/") for n in values["nodes"]]
    if not nodes or not all(n.startswith(("http://", "https://")) for n in nodes):
        raise ConfigError("[mobile] nodes must list the nodes' SDK URLs (http:// or https://)")
    key = str(values["api_key"])
    key_file = str(values["api_key_file"])
    if key_file:
        key_path = Path(key_file)
        if path is not None and not key_path.is_absolute():
            key_path = path.parent / key_path
        try:
            mode = key_path.stat().st_mode
            key = key_path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read [mobile] api_key_file {key_path}: {exc.strerror}"
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{key_path} is readable by others; chmod 600 it")
    if not key:
        raise ConfigError(
            "[mobile] needs an API key of scope mobile: `openmfa apikey create mobile "
            "--scope mobile`, then api_key_file = the file holding it"
        )
    return MobileConfig(
        host=host,
        port=port,
        prefix=prefix,
        nodes=nodes,
        api_key=key,
        long_poll_seconds=float(values["long_poll_seconds"]),
        ca_file=str(values["ca_file"]),
        path=path,
        webpush_vapid_key_file=_relative(path, str(values["webpush_vapid_key_file"])),
        webpush_subject=str(values["webpush_subject"]),
        webpush_allow_http=bool(values["webpush_allow_http"]),
    )


def _relative(config: Path | None, name: str) -> Path | None:
    if not name:
        return None
    p = Path(name)
    return p if p.is_absolute() or config is None else config.parent / p
