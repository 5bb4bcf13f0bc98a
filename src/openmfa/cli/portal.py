"""`openmfa portal ...`: the User Portal (its own process, on its own host)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import Reporting, fails_cleanly, run_beside_nodes, service_options


@click.group()
def portal() -> None:
    """The User Portal: people sign in and manage their own sign-in methods."""


@portal.command("serve")
@service_options("portal")
@fails_cleanly
def portal_serve(config_path: Path, listen: str | None) -> None:
    """Run the User Portal until stopped."""
    import ssl

    from ..config import parse_listen
    from ..errors import ConfigError
    from ..portal.app import create_app
    from ..portal.config import load

    if not config_path.exists():
        raise ConfigError(
            f"{config_path} does not exist; write one with "
            f"`openmfa portal default-config > {config_path}` and set its api_key_file"
        )
    cfg = load(config_path)
    host, port = parse_listen(listen) if listen else (cfg.host, cfg.port)
    verify: ssl.SSLContext | bool = True
    if cfg.ca_file:
        verify = ssl.create_default_context(cafile=cfg.ca_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from ..install.mobile_control import PORTAL_LOCK as LOCK
    from ..install.mobile_control import PORTAL_RECORD as RECORD

    app = create_app(cfg, verify=verify)
    click.echo(f"User Portal on http://{host}:{port}{cfg.prefix}/ for {', '.join(cfg.nodes)}")
    busy = app.state.sessions.signing_in
    report = Reporting("portal", cfg.name, cfg.nodes, cfg.api_key, verify, busy)
    run_beside_nodes(app, host, port, cfg.prefix, config_path, LOCK, RECORD, report)


@portal.command("default-config")
def portal_default_config() -> None:
    """Print the shipped portal.toml (every setting, commented)."""
    from ..portal.config import default_text

    click.echo(default_text(), nl=False)
