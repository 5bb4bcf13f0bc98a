"""``mobile.toml``: the Mobile App Web Service's settings over its shipped defaults."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..service_config import basics, read_settings, relative

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
    app_dir: Path | None = None
    """The administrator's own copy of the Authenticator web app (None: the shipped one)."""
    product_name: str = ""
    logo_file: Path | None = None
    """The organisation's name and logo on the app's screens (``webapp_routes.Brand``)."""


def app_dir(where: Path | None, setting: str) -> Path | None:
    """``app_dir`` (mobile.toml's, or the node's ``[mobile]``): None for the shipped app, else
    a directory holding the app's index.html."""
    if where is not None and not (where / "index.html").is_file():
        raise ConfigError(f"{setting} {where} is not a copy of the web app (no index.html there)")
    return where


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
        app_dir=app_dir(relative(path, str(values["app_dir"])), "[mobile] app_dir"),
        product_name=str(values["product_name"]),
        logo_file=relative(path, str(values["logo_file"])),
    )
