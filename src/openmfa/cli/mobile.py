"""`openmfa mobile ...`: the Mobile App Web Service (its own process, on its own host)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import fails_cleanly


@click.group()
def mobile() -> None:
    """The Mobile App Web Service: device activation, push requests, answers."""


@mobile.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="mobile.toml (see `openmfa mobile default-config`).",
)
@click.option("--listen", default=None, help="HOST:PORT, instead of [mobile] listen.")
@fails_cleanly
def mobile_serve(config_path: Path, listen: str | None) -> None:
    """Run the Mobile App Web Service until stopped."""
    import ssl

    import uvicorn

    from ..config import parse_listen
    from ..mobile.app import create_app
    from ..mobile.config import load

    cfg = load(config_path)
    host, port = parse_listen(listen) if listen else (cfg.host, cfg.port)
    verify: ssl.SSLContext | bool = True
    if cfg.ca_file:
        verify = ssl.create_default_context(cafile=cfg.ca_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per device poll otherwise
    app = create_app(
        cfg.nodes,
        cfg.api_key,
        prefix=cfg.prefix,
        long_poll_seconds=cfg.long_poll_seconds,
        verify=verify,
    )
    click.echo(f"mobile service on http://{host}:{port}{cfg.prefix} for {', '.join(cfg.nodes)}")
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


@mobile.command("default-config")
def mobile_default_config() -> None:
    """Print the shipped mobile.toml (every setting, commented)."""
    from ..mobile.config import default_text

    click.echo(default_text(), nl=False)
