"""Helpers every command group shares: the --data-dir option, clean failures, the open store."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from ..config import Config
from ..errors import OpenMfaError
from ..store.database import DataDir, Store

F = TypeVar("F", bound=Callable[..., Any])


def data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="OPENMFA_DATA_DIR",
        default=Path("var"),
        show_default="$OPENMFA_DATA_DIR, else ./var",
        help="Directory holding the data file, key file and server.toml.",
    )(fn)


def fails_cleanly(fn: F) -> F:
    """Turn our errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OpenMfaError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            click.echo(
                f"error: the data file could not be used ({reason}); nothing was "
                "changed. Check `openmfa serve` starts, or restore a backup",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def opened(data_dir: Path) -> Iterator[tuple[Store, Config]]:
    """The node's open store and its configuration, closed afterwards."""
    dd = DataDir(data_dir)
    config = dd.config()
    store = Store.open(dd, config)
    try:
        yield store, config
    finally:
        store.close()


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_option(fn: F) -> F:
    return click.option(
        "--record",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Install record (default $OPENMFA_INSTALL_RECORD, else /etc/openmfa/install.toml).",
    )(fn)


def service_options(name: str) -> Callable[[F], F]:
    """``--config NAME.toml`` and ``--listen`` of a service beside the nodes."""

    def wrap(fn: F) -> F:
        fn = click.option("--listen", default=None, help=f"HOST:PORT, instead of [{name}] listen.")(
            fn
        )
        return click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            required=True,
            help=f"{name}.toml (see `openmfa {name} default-config`).",
        )(fn)

    return wrap


def run_beside_nodes(
    app: Any, host: str, port: int, prefix: str, config_path: Path, lock: str, record: str
) -> None:
    """Run a service of the nodes' (the mobile service, the portal) until stopped: one per
    config file (``lock`` beside it, with the pid), and how it runs kept in ``record`` for a
    restart by ``upgrade``/``rollback``."""
    import uvicorn

    from ..node.control import base_url, record_serve
    from ..node.lock import NodeLock

    where = config_path.resolve().parent
    held = NodeLock(where, lock).acquire(f"serve {lock.removesuffix('.lock')}")
    record_serve(where, base_url(host, port, False) + prefix, "", record)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
    finally:
        held.release()
