"""The Mobile App Web Service of a host, stopped and started as an administrator would, and
exactly as it ran before (the node's rules, ``node.control``): ``openmfa mobile serve`` holds
``mobile.lock`` beside its ``mobile.toml`` (with its pid) and records how it runs in
``mobile.serve.json``; a restart runs the new release's ``openmfa`` with the same arguments and
environment (or through its service manager) and must come back at the same URL, prefix
included, or the upgrade that restarted it rolls back."""

from __future__ import annotations

from pathlib import Path

from ..config import parse_listen
from ..mobile.config import CONFIG_NAME, load
from ..node.control import NodeControl, base_url

LOCK = "mobile.lock"
RECORD = "mobile.serve.json"


class MobileControl(NodeControl):
    what = "the mobile service"
    serves = "the mobile service"
    lock_name = LOCK
    record_name = RECORD
    log_name = "mobile.log"
    ready_path = "/healthz"

    def default_argv(self) -> list[str]:
        return ["mobile", "serve", "--config", str(self.config_file)]

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
