"""``openmfa serve``: the node's processes around the SDK app (uvicorn, signals, TLS)."""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from . import activation
from .config import KEEP_ALIVE_SECONDS, Config, parse_listen
from .errors import ConfigError
from .mobile_url import with_mobile_public_url
from .node.control import base_url, record_serve
from .radius.handoff import inherited
from .radius.service import bind_udp
from .sdk.app import create_app
from .store.database import Store
from .wiring import NodeRuntime


def serve(
    store: Store, config: Config, listen: str | None = None, radius_listen: str | None = None
) -> None:
    host, port = parse_listen(listen or config.get("server", "listen"))
    cert, key = config.get("server", "tls_cert"), config.get("server", "tls_key")
    if bool(cert) != bool(key):
        raise ConfigError("[server] tls_cert and tls_key must be set together (or both empty)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per farm poll otherwise
    # Alembic says "Context impl SQLiteImpl" at every readiness check (each second) otherwise.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    # Sockets a service manager opened for this process come first (socket activation).
    passed = activation.take()
    if passed.http is not None:
        host, port = parse_listen(activation.address(passed.http))
    sock = passed.http or _bind(host, port)
    radius = config.get("radius", "listen") if radius_listen is None else radius_listen
    if (
        passed.radius is None
        and listen
        and radius_listen is None
        and radius
        and parse_listen(radius)[0] != host
    ):
        # server.toml always holds [radius] listen (`openmfa init` writes the shipped one), so
        # an administrator's choice cannot be told from the default: RADIUS stays, and says so.
        logging.getLogger("openmfa").warning(
            "--listen moves the Web Service SDK only: RADIUS stays on udp %s ([radius] listen); "
            "add --radius-listen HOST:PORT to move it too (or 'off')",
            radius,
        )
    radius, radius_sock = _radius_socket(radius, passed.radius)
    scheme = "https" if cert else "http"
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("openmfa").info(
        "OpenMFA node %s serving the Web Service SDK on %s://%s:%d%s (data: %s)",
        store.node_name,
        scheme,
        shown,
        port,
        f" ({activation.FROM})" if passed.http is not None else "",
        store.data_dir.root,
    )
    # How this node runs, for a restart by `upgrade`/`rollback` (written before it answers);
    # outside the service manager, such a restart binds where the passed sockets were.
    record_serve(
        store.data_dir.root,
        base_url(host, port, bool(cert)),
        radius or "",
        argv=activation.restart_argv(sys.argv[1:], passed),
    )
    # Activation codes name the mobile service where it really is, unless [mobile] public_url
    # says where phones reach it.
    config = with_mobile_public_url(config, store.data_dir.root, base_url(host, port, bool(cert)))
    node = NodeRuntime(store, config, radius, radius_sock)
    mobile: list[Starlette] = []
    app = create_app(node, lifespan=lambda app: _running(node, mobile))
    if config.get("mobile", "enabled"):
        mobile.append(_mount_mobile(node, app, config))
    if config.get("portal", "enabled"):
        mobile.append(_mount_portal(node, app, config))
    if config.get("console", "enabled"):
        mobile.append(_mount_console(node, app, config))

    def before_shutdown() -> None:
        node.push_hub.close()
        for mounted in mobile:  # the phones' held polls, where the mobile service runs here
            waiters = getattr(mounted.state, "waiters", None)
            if waiters is not None:
                waiters.release_all()

    server = _Server(
        before_shutdown,
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=bool(config.get("server", "access_log")),
            ssl_certfile=cert or None,
            ssl_keyfile=key or None,
            timeout_graceful_shutdown=30,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            log_level="info",
            server_header=False,
            # The client's address and scheme are the peer's: X-Forwarded-* are believed only
            # by a mounted portal, from its own trusted_proxies (uvicorn would take them from
            # any process on 127.0.0.1).
            proxy_headers=False,
        ),
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler
    # that was there before it; make that one a no-op, so a clean shutdown exits with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    _tune_gc()
    server.run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, which first ends the long-polls of a stopping node (they would hold
    the graceful shutdown for as long as they wait)."""

    def __init__(self, before_shutdown: Callable[[], None], config: uvicorn.Config) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._before_shutdown()
        await super().shutdown(sockets)


@asynccontextmanager
async def _running(node: NodeRuntime, mounted: list[Starlette]) -> AsyncIterator[None]:
    """The HTTP server's lifespan: the node starts before the first request, stops after the
    last; a mounted Mobile App Web Service runs in between."""
    await node.start()
    try:
        async with AsyncExitStack() as stack:
            for app in mounted:
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield
    finally:
        await node.stop()


def _mount_mobile(node: NodeRuntime, app: Starlette, config: Config) -> Starlette:
    """``[mobile] enabled``: the Mobile App Web Service inside this process (a single-host
    install), at ``[mobile] prefix``. It is the same app as ``openmfa mobile serve`` and still
    talks to the node only through the SDK — in process, with a key that lives in memory."""
    import httpx

    from .mobile.app import create_app as create_mobile
    from .mobile.config import app_dir
    from .mobile.webapp_routes import WebApp, brand_of

    prefix = "/" + str(config.get("mobile", "prefix")).strip("/")
    if prefix == "/" or prefix.startswith(("/v1", "/farm")):
        raise ConfigError(f"[mobile] prefix {prefix!r} must be a path of its own, like /mobile")
    own = str(config.get("mobile", "app_dir"))
    where = app_dir(node.store.data_dir.root / own if own else None, "[mobile] app_dir")
    name, logo = str(config.get("mobile", "product_name")), str(config.get("mobile", "logo_file"))
    brand = brand_of(name, node.store.data_dir.root / logo if logo else None, "[mobile]")
    key = node.keyring.internal("mobile (in serve)", "mobile")
    mobile = create_mobile(
        ["http://node.internal"],
        key,
        prefix="",
        transport=httpx.ASGITransport(app=app),
        webapp=WebApp(where, brand=brand),
    )
    app.router.routes.append(Mount(prefix, app=mobile))
    return mobile


def _mount_portal(node: NodeRuntime, app: Starlette, config: Config) -> Starlette:
    """``[portal] enabled``: the User Portal inside this process, at ``[portal] prefix``; the
    same app as ``openmfa portal serve``, talking to the node only through the SDK (in process,
    with a ``portal`` key that lives in memory)."""
    import httpx

    from .portal.app import create_app as create_portal
    from .portal.config import load as load_portal

    prefix, path = _beside(node, config, "portal")
    key = node.keyring.internal("portal (in serve)", "portal")
    cfg = load_portal(path, api_key=key)
    portal = create_portal(cfg, transport=httpx.ASGITransport(app=app), mounted=True)
    app.router.routes.append(Mount(prefix, app=portal))
    return portal


def _mount_console(node: NodeRuntime, app: Starlette, config: Config) -> Starlette:
    """``[console] enabled``: the administration console inside this process, at ``[console]
    prefix``, as ``_mount_portal`` does the portal (through the SDK, a ``console`` key that
    lives in memory)."""
    import httpx

    from .console.app import create_app as create_console
    from .console.config import load as load_console

    prefix, path = _beside(node, config, "console")
    key = node.keyring.internal("console (in serve)", "console")
    cfg = load_console(path, api_key=key, prefix=prefix)
    console = create_console(cfg, transport=httpx.ASGITransport(app=app), mounted=True)
    app.router.routes.append(Mount(prefix, app=console))
    return console


def _beside(node: NodeRuntime, config: Config, section: str) -> tuple[str, Path | None]:
    """The prefix and settings file (``web_config``) of an app served inside this node."""
    prefix = "/" + str(config.get(section, "prefix")).strip("/")
    taken = [
        other
        for other in ("mobile", "portal", "console")
        if other != section
        and config.get(other, "enabled")
        and "/" + str(config.get(other, "prefix")).strip("/") == prefix
    ]
    if prefix == "/" or prefix.startswith(("/v1", "/farm")) or taken:
        raise ConfigError(
            f"[{section}] prefix {prefix!r} must be a path of its own, like /{section}"
            + (f" ([{taken[0]}] serves at it)" if taken else "")
        )
    web = str(config.get(section, "web_config"))
    if not web:
        return prefix, None
    path = Path(web) if Path(web).is_absolute() else node.store.data_dir.root / web
    if not path.exists():
        raise ConfigError(f"[{section}] web_config {path} does not exist")
    return prefix, path


def _radius_socket(listen: str, passed: socket.socket | None) -> tuple[str, socket.socket | None]:
    """Where RADIUS listens and its socket: the one the service manager passed, else the one a
    restart in place handed over (radius.handoff: no request is lost), else bound here."""
    log = logging.getLogger("openmfa")
    if passed is not None:
        where = activation.address(passed)
        if listen and not _bound_as(passed, listen):
            log.warning(
                "RADIUS answers on udp %s, the socket the service manager passed; "
                "[radius] listen (or --radius-listen) says %s, which is not used",
                where,
                listen,
            )
        log.info("RADIUS on udp %s (%s)", where, activation.FROM)
        return where, passed
    if not listen:
        return "", None
    return listen, inherited(listen) or bind_udp(listen)


def _bound_as(sock: socket.socket, listen: str) -> bool:
    """Is ``sock`` bound where ``listen`` (HOST:PORT) says?"""
    try:
        host, port = parse_listen(listen)
        wanted = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, ConfigError):
        return False
    return sock.getsockname()[:2] in {(info[4][0], info[4][1]) for info in wanted}


def _tune_gc() -> None:
    """The node keeps large, long-lived caches (users, decrypted seeds, recent RADIUS answers)
    and allocates many short-lived objects per request. With CPython's default thresholds the
    cyclic collector re-scans those caches so often that it took about a tenth of the CPU under
    RADIUS load (perf, bench/radius.py). What is alive at start-up is frozen out of collection,
    and collections run less often; the request path creates almost no reference cycles."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a taken port is a clear error, not a traceback."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise ConfigError(
            f"could not listen on {host}:{port} ({exc.strerror}); the port may be in use or the "
            "address not one of this host's. Choose another with --listen or [server] listen"
        ) from None
    sock.set_inheritable(True)
    return sock
