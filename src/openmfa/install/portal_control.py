"""The User Portal of a host, stopped and started as an administrator would (the rules of
``node.control``, as for the mobile service): ``openmfa portal serve`` holds ``portal.lock``
beside its ``portal.toml`` and records how it runs in ``portal.serve.json``; a restart must come
back at the same URL, prefix included, or the upgrade that restarted it rolls back."""

from __future__ import annotations

from pathlib import Path

from ..config import parse_listen
from ..node.control import NodeControl, base_url
from ..portal.config import CONFIG_NAME, load

LOCK = "portal.lock"
RECORD = "portal.serve.json"


class PortalControl(NodeControl):
    what = "the User Portal"
    serves = "the User Portal"
    lock_name = LOCK
    record_name = RECORD
    log_name = "portal.log"
    ready_path = "/healthz"

    def default_argv(self) -> list[str]:
        return ["portal", "serve", "--config", str(self.config_file)]

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_NAME

    def _config_url(self, listen: str | None) -> str:
        cfg = load(self.config_file)
        host, port = (cfg.host, cfg.port)
        if listen is not None:
            host, port = parse_listen(listen)
        return base_url(host, port, False) + cfg.prefix

    def _config_radius(self) -> str:
        return ""
