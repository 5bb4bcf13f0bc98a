"""``mobile.toml``: the Mobile App Web Service's settings over its shipped defaults."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..config import parse_listen
from ..errors import ConfigError
from ..service_config import basics, check_prefix, read_settings, relative

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
    name: str = ""
    """Its name in the farm's inventory ("" reports nothing)."""


def load(path: Path | None) -> MobileConfig:
    values = read_settings(default_text(), path, CONFIG_NAME)["mobile"]
    b = basics(values, "mobile", path, "mobile")
    return MobileConfig(
        host=b.host,
        port=b.port,
        prefix=b.prefix,
        nodes=b.nodes,
        api_key=b.api_key,
        long_poll_seconds=float(values["long_poll_seconds"]),
        ca_file=b.ca_file,
        path=path,
        webpush_vapid_key_file=relative(path, str(values["webpush_vapid_key_file"])),
        webpush_subject=str(values["webpush_subject"]),
        webpush_allow_http=bool(values["webpush_allow_http"]),
        name=b.name,
    )


def served_at(path: Path) -> str:
    """The URL the mobile service of ``path`` (a ``mobile.toml``) is reached at: where it
    listened last (its serve record beside it: ``--listen`` included), else its ``listen`` and
    ``prefix``; the shipped file's (``http://127.0.0.1:8490/mobile``) when ``path`` does not
    exist or cannot be read."""
    from ..install.mobile_control import RECORD
    from ..node.control import Invocation, base_url

    given: Path | None = path if path.exists() else None
    if given is not None:
        ran = Invocation.load(given.parent / RECORD)
        if ran is not None and ran.url:
            return ran.url.rstrip("/")
    for source in (given, None):
        try:
            values = read_settings(default_text(), source, CONFIG_NAME)["mobile"]
            host, port = parse_listen(str(values["listen"]))
            return base_url(host, port, False) + check_prefix("mobile", str(values["prefix"]))
        except ConfigError:
            continue  # the service itself says what is wrong with its file when it starts
    raise AssertionError("the shipped mobile.toml is valid")
