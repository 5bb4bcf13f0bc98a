"""`openmfa console ...`: the administration console (its own process, on its own host)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import Reporting, fails_cleanly, run_beside_nodes, service_options


@click.group()
def console() -> None:
    """The administration console: helpdesk and administrators, each under their own name."""


@console.command("serve")
@service_options("console")
@fails_cleanly
def console_serve(config_path: Path, listen: str | None) -> None:
    """Run the administration console until stopped."""
    import ssl

    from ..config import parse_listen
    from ..console.app import create_app
    from ..console.config import load
    from ..errors import ConfigError
    from ..install.mobile_control import CONSOLE_LOCK as LOCK
    from ..install.mobile_control import CONSOLE_RECORD as RECORD

    if not config_path.exists():
        raise ConfigError(
            f"{config_path} does not exist; write one with "
            f"`openmfa console default-config > {config_path}` and set its api_key_file"
        )
    cfg = load(config_path)
    host, port = parse_listen(listen) if listen else (cfg.host, cfg.port)
    verify: ssl.SSLContext | bool = True
    if cfg.ca_file:
        verify = ssl.create_default_context(cafile=cfg.ca_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(cfg, verify=verify)
    click.echo(f"Console on http://{host}:{port}{cfg.prefix}/ for {', '.join(cfg.nodes)}")
    report = Reporting("console", cfg.name, cfg.nodes, cfg.api_key, verify)
    run_beside_nodes(app, host, port, cfg.prefix, config_path, LOCK, RECORD, report)


@console.command("default-config")
def console_default_config() -> None:
    """Print the shipped console.toml (every setting, commented)."""
    from ..console.config import default_text

    click.echo(default_text(), nl=False)
