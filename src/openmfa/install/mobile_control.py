"""The services beside the nodes on a host — the Mobile App Web Service, the User Portal and the
administration console —
stopped and started as an administrator would, and exactly as they ran before (the node's
rules, ``node.control``): ``openmfa mobile|portal serve`` holds ``NAME.lock`` beside its
``NAME.toml`` (with its pid) and records how it runs in ``NAME.serve.json``; a restart runs the
new release's ``openmfa`` with the same arguments and environment (or through its service
manager) and must come back at the same URL, prefix included, or the upgrade that restarted it
rolls back."""

from __future__ import annotations

from pathlib import Path

from ..config import parse_listen
from ..errors import ConfigError
from ..node.control import Invocation, NodeControl, base_url
from ..service_config import check_prefix, read_settings

LOCK = "mobile.lock"
RECORD = "mobile.serve.json"
PORTAL_LOCK = "portal.lock"
PORTAL_RECORD = "portal.serve.json"
CONSOLE_LOCK = "console.lock"
CONSOLE_RECORD = "console.serve.json"


class ServiceControl(NodeControl):
    """One service of the host, named like its command (``openmfa NAME serve``)."""

    name = ""
    ready_path = "/healthz"

    def default_argv(self) -> list[str]:
        return [self.name, "serve", "--config", str(self.config_file)]

    @property
    def config_file(self) -> Path:
        return self.data_dir / f"{self.name}.toml"

    def _listen(self) -> tuple[str, int, str]:
        """Host, port and prefix from the service's own file."""
        raise NotImplementedError

    def _config_url(self, listen: str | None) -> str:
        host, port, prefix = self._listen()
        if listen is not None:
            host, port = parse_listen(listen)
        return base_url(host, port, False) + prefix

    def _config_radius(self) -> str:
        return ""


class MobileControl(ServiceControl):
    name = "mobile"
    what = "the mobile service"
    serves = "the mobile service"
    lock_name = LOCK
    record_name = RECORD
    log_name = "mobile.log"

    def _listen(self) -> tuple[str, int, str]:
        from ..mobile.config import load

        cfg = load(self.config_file)
        return cfg.host, cfg.port, cfg.prefix


class PortalControl(ServiceControl):
    name = "portal"
    what = "the User Portal"
    serves = "the User Portal"
    lock_name = PORTAL_LOCK
    record_name = PORTAL_RECORD
    log_name = "portal.log"

    def _listen(self) -> tuple[str, int, str]:
        from ..portal.config import load

        cfg = load(self.config_file)
        return cfg.host, cfg.port, cfg.prefix


class ConsoleControl(ServiceControl):
    name = "console"
    what = "the administration console"
    serves = "the administration console"
    lock_name = CONSOLE_LOCK
    record_name = CONSOLE_RECORD
    log_name = "console.log"

    def _listen(self) -> tuple[str, int, str]:
        from ..console.config import load

        cfg = load(self.config_file)
        return cfg.host, cfg.port, cfg.prefix


def served_at(path: Path) -> str:
    """The URL the mobile service of ``path`` (a ``mobile.toml``) is reached at: where it
    listened last (its serve record beside it: ``--listen`` included), else its ``listen`` and
    ``prefix``; the shipped file's (``http://127.0.0.1:8490/mobile``) when ``path`` does not
    exist or cannot be read."""
    from ..mobile.config import CONFIG_NAME, default_text

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
