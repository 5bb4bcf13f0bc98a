"""Helpers every command group shares: the --data-dir option, clean failures, the open store."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from ..config import KEEP_ALIVE_SECONDS, Config
from ..errors import OpenMfaError
from ..store.database import DataDir, Store

if TYPE_CHECKING:
    from ..component import Reporter
    from ..sdk.models import ComponentOrder

F = TypeVar("F", bound=Callable[..., Any])


DATA_DIR_META = "openmfa.data_dir"
"""Where ``openmfa --data-dir DIR COMMAND`` keeps DIR for the command (``ctx.meta``)."""


def data_dir_option(fn: F) -> F:
    """``--data-dir`` of a command. Given after the command's name it wins; else the one given
    before it (``openmfa --data-dir DIR user unlock NAME``); else ``$OPENMFA_DATA_DIR``; else
    ``./var``."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="OPENMFA_DATA_DIR",
        default=Path("var"),
        show_default="$OPENMFA_DATA_DIR, else ./var",
        help="Directory holding the data file, key file and server.toml (also taken before "
        "the command's name).",
        callback=_data_dir,
    )(fn)


def _data_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    before = ctx.meta.get(DATA_DIR_META)
    if before is not None and ctx.get_parameter_source(str(param.name)) not in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.PROMPT,
    ):
        return Path(before)
    return value


def group_data_dir_option(fn: F) -> F:
    """``openmfa --data-dir DIR COMMAND``: every command's ``--data-dir`` (see above)."""

    def keep(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.meta[DATA_DIR_META] = value

    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=keep,
        help="Directory holding the data file, key file and server.toml, for the command "
        "(its own --data-dir wins; default $OPENMFA_DATA_DIR, else ./var).",
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
    app: Any,
    host: str,
    port: int,
    prefix: str,
    config_path: Path,
    lock: str,
    record: str,
    report: Reporting | None = None,
) -> None:
    """Run a service of the nodes' (the mobile service, the portal) until stopped: one per
    config file (``lock`` beside it, with the pid), and how it runs kept in ``record`` for a
    restart by ``upgrade``/``rollback``; reporting to the farm's inventory when named."""
    import uvicorn

    from ..node.control import base_url, record_serve
    from ..node.lock import NodeLock

    where = config_path.resolve().parent
    held = NodeLock(where, lock).acquire(f"serve {lock.removesuffix('.lock')}")
    url = base_url(host, port, False) + prefix
    record_serve(where, url, "", record)
    reporter = reporter_for(report, url, where) if report is not None and report.name else None
    if reporter is not None:
        reporter.start()
    # uvicorn re-raises SIGTERM/SIGINT to the handler that was there before it once it has shut
    # down gracefully; a no-op there makes a clean stop exit with status 0 (it was 143).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,  # longer than a proxy keeps idle ones
            server_header=False,
            # X-Forwarded-For/-Proto are the app's to believe (the portal's trusted_proxies),
            # never uvicorn's: it would take them from any process on 127.0.0.1.
            proxy_headers=False,
        )
    finally:
        if reporter is not None:
            reporter.stop()
        held.release()


@dataclass(frozen=True)
class Reporting:
    """What a service beside the nodes reports to the farm's inventory with."""

    kind: str
    name: str
    nodes: list[str]
    api_key: str
    verify: Any = True
    busy: Callable[[], int] | None = None


def reporter_for(r: Reporting, url: str, where: Path) -> Reporter:
    from ..component import Identity, Reporter
    from ..farm.agent import install_state

    return Reporter(
        Identity(r.name, r.kind, url),
        r.nodes,
        r.api_key,
        state_file=where / f"{r.kind}.orders.json",
        launch=launch_order,
        local=install_state,
        verify=r.verify,
        busy=r.busy or (lambda: 0),
    )


def launch_order(order: ComponentOrder) -> subprocess.Popen[bytes]:
    """Start the farm's order on this host (``openmfa upgrade``/``rollback`` from the install
    record), detached from this process, which it stops."""
    from ..farm.agent import launch
    from ..install.record import record_path

    args = ("--from-bundle", order.bundle) if order.action == "upgrade" else ()
    return launch(record_path(None), order.action, *args)[0]
