"""`openmfa mobile ...`: the Mobile App Web Service (its own process, on its own host)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import Reporting, fails_cleanly, run_beside_nodes, service_options


@click.group()
def mobile() -> None:
    """The Mobile App Web Service: device activation, push requests, answers."""


@mobile.command("serve")
@service_options("mobile")
@fails_cleanly
def mobile_serve(config_path: Path, listen: str | None) -> None:
    """Run the Mobile App Web Service until stopped."""
    import ssl

    from ..config import parse_listen
    from ..errors import ConfigError
    from ..mobile.app import Standalone, create_app
    from ..mobile.config import load
    from ..mobile.webapp_routes import WebApp, brand_of

    cfg = load(config_path)
    host, port = parse_listen(listen) if listen else (cfg.host, cfg.port)
    verify: ssl.SSLContext | bool = True
    if cfg.ca_file:
        verify = ssl.create_default_context(cafile=cfg.ca_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per device poll otherwise
    webpush = None
    if cfg.webpush_vapid_key_file is not None:
        from ..mobile.providers import WebPush

        if not cfg.webpush_vapid_key_file.exists():
            raise ConfigError(
                f"[mobile] webpush_vapid_key_file {cfg.webpush_vapid_key_file} does not exist; "
                "make one with `openmfa mobile vapid-key FILE`"
            )
        webpush = WebPush(
            cfg.webpush_vapid_key_file,
            cfg.webpush_subject,
            allow_http=cfg.webpush_allow_http,
        )
    app = create_app(
        cfg.nodes,
        cfg.api_key,
        prefix=cfg.prefix,
        long_poll_seconds=cfg.long_poll_seconds,
        verify=verify,
        webpush=webpush,
        webapp=WebApp(cfg.app_dir, brand=brand_of(cfg.product_name, cfg.logo_file, "[mobile]")),
    )
    from ..install.mobile_control import LOCK, RECORD

    click.echo(f"mobile service on http://{host}:{port}{cfg.prefix} for {', '.join(cfg.nodes)}")
    report = Reporting("mobile", cfg.name, cfg.nodes, cfg.api_key, verify)
    served = Standalone(app, cfg.prefix)
    run_beside_nodes(served, host, port, cfg.prefix, config_path, LOCK, RECORD, report)


@mobile.command("vapid-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@fails_cleanly
def mobile_vapid_key(path: Path) -> None:
    """Make the VAPID key WebPush needs (a P-256 key, PEM, mode 0600); print its public key."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..core.push import b64u
    from ..errors import ConfigError

    if path.exists():
        raise ConfigError(f"{path} exists; keep it (devices subscribed with its public key)")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    click.echo(f"wrote {path}; application server key (for subscriptions): {b64u(public)}")


@mobile.command("default-config")
def mobile_default_config() -> None:
    """Print the shipped mobile.toml (every setting, commented)."""
    from ..mobile.config import default_text

    click.echo(default_text(), nl=False)
