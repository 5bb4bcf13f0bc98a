"""Where devices reach the Mobile App Web Service: the URL activation codes carry, found from
the node's configuration, its serve record, or the mobile service's own (``openmfa serve`` and
``openmfa devices``). Outside ``config``: it reads what the node and the mobile service record."""

from __future__ import annotations

from pathlib import Path

from .config import Config, parse_listen
from .install.mobile_control import served_at
from .mobile.config import CONFIG_NAME as MOBILE_CONFIG
from .node.control import base_url
from .store.serve_record import SERVE_RECORD, Invocation


def mobile_public_url(config: Config, data_dir: Path, node_url: str = "") -> str:
    """Where devices reach the Mobile App Web Service (the URL activation codes carry):
    ``[mobile] public_url`` when set. Otherwise where the service really listens: inside the
    node (``[mobile] enabled``), the node's address — ``node_url`` (where it listens now), else
    where it listened last (its serve record), else ``[server] listen`` — and ``[mobile]
    prefix``; else the mobile service run from this data directory (``mobile.toml`` beside
    ``server.toml``: where it listened last, else its ``listen`` and ``prefix``), or the shipped
    ``mobile.toml``'s ``http://127.0.0.1:8490/mobile`` when there is none."""
    given = str(config.get("mobile", "public_url")).rstrip("/")
    if given:
        return given
    if not config.get("mobile", "enabled"):
        return served_at(data_dir / MOBILE_CONFIG)
    if not node_url:
        ran = Invocation.load(data_dir / SERVE_RECORD)
        if ran is not None and ran.url:
            node_url = ran.url
        else:
            host, port = parse_listen(str(config.get("server", "listen")))
            node_url = base_url(host, port, bool(config.get("server", "tls_cert")))
    return node_url.rstrip("/") + "/" + str(config.get("mobile", "prefix")).strip("/")


def with_mobile_public_url(config: Config, data_dir: Path, node_url: str = "") -> Config:
    """``config`` with ``[mobile] public_url`` as ``mobile_public_url`` finds it."""
    mobile = {
        **config.values["mobile"],
        "public_url": mobile_public_url(config, data_dir, node_url),
    }
    return Config({**config.values, "mobile": mobile}, config.path)
