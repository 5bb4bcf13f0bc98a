"""The administration console's pages (server-rendered, Jinja2; one script: the passkey),
under its prefix (``/console``):

    GET  /                       -> /dashboard when signed in, else /sign-in
    GET  POST /sign-in           user name and password (an operator: a person with a role)
    GET  POST /second-factor     a code, where the node allows one; POST /push: a numbered
                                 push (GET /push shows the number), POST /push/wait: its answer;
                                 POST /passkey: a passkey's answer (the page's one script)
    POST /sign-out, /language
    GET  /dashboard              the last 24 hours: sign-ins by channel and result (a chart and
                                 its table), failures, locked users, fraud reports, lockouts
    GET  /reports, /reports.csv, /reports.svg   a month's report (?month=YYYY-MM), as a page
                                 (SVG charts, each with its table), CSV, one chart as a file
    GET  /users                  search by the start of the name, paged by the node
    GET  /users/{name}           methods, devices, lock, groups, role, recent sign-ins
    POST /users/{name}/unlock, /bypass, /access-code, /role,
         /users/{name}/devices/{device}/revoke, /users/{name}/export, /users/{name}/erase
                                 (each needs a recent sign-in)
    GET  /tokens                 the token inventory (all, or the free ones), paged by the node
    POST /tokens/assign, /tokens/remove   (a serial; each needs a recent sign-in)
    POST /tokens/import          a token file (multipart, 8 MiB at the most; administrators)
    GET  /keys                   API keys; POST /keys/create (the token shown once), /keys/revoke
    GET  /farm                   the nodes and the hosts beside them (renews every 5 s)
    GET  /audit, /audit.csv      filtered by user, result and time; CSV streamed
    GET  /static/console.css, /healthz

Security: a CSRF token on every form and the Origin / Sec-Fetch-Site checked, a session cookie
signed with the session key (``__Host-``, Secure, SameSite=Strict over TLS), idle and absolute
timeouts, rate-limited sign-in, CSP with only the console's own script (the passkey), no
framing, HSTS over TLS.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ..portal.sessions import Attempts
from ..portal.theme import SecurityHeaders
from ..sdk.async_client import AsyncSdkClient
from . import i18n
from .config import ConsoleConfig
from .pages import admin_pages, audit_pages, reports, sign_in, tokens, users
from .runner import Console, Endpoint, Sessions, View, page

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


def routes(console: Console) -> list[BaseRoute]:
    def public(view: View) -> Endpoint:
        return page(console, view, public=True)

    def signed_in(view: View) -> Endpoint:
        return page(console, view)

    def action(view: View) -> Endpoint:
        return page(console, view, recent=True)

    def upload(view: View) -> Endpoint:
        return page(console, view, recent=True, upload=True)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response(status_code=404)
        path = str(resources.files("openmfa.console").joinpath("static", name))
        return FileResponse(path, media_type=STATIC[name])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    post = ["POST"]
    return [
        Route("/", public(sign_in.home)),
        Route("/sign-in", public(sign_in.sign_in), methods=["GET", "POST"]),
        Route("/second-factor", public(sign_in.second_factor), methods=["GET", "POST"]),
        Route("/push", public(sign_in.push_start), methods=post),
        Route("/push", public(sign_in.push_page), methods=["GET"]),
        Route("/push/wait", public(sign_in.push_wait), methods=post),
        Route("/passkey", public(sign_in.passkey), methods=post),
        Route("/sign-out", public(sign_in.sign_out), methods=post),
        Route("/language", public(sign_in.language), methods=post),
        Route("/dashboard", signed_in(reports.dashboard)),
        Route("/reports", signed_in(reports.report)),
        Route("/reports.csv", signed_in(reports.report_csv)),
        Route("/reports.svg", signed_in(reports.report_svg)),
        Route("/users", signed_in(users.users)),
        Route("/users/{name}", signed_in(users.user)),
        Route("/users/{name}/unlock", action(users.unlock), methods=post),
        Route("/users/{name}/bypass", action(users.bypass), methods=post),
        Route("/users/{name}/access-code", action(users.access_code), methods=post),
        Route("/users/{name}/role", action(users.role), methods=post),
        Route("/users/{name}/export", action(users.export), methods=post),
        Route("/users/{name}/erase", action(users.erase), methods=post),
        Route("/users/{name}/devices/{device}/revoke", action(users.revoke_device), methods=post),
        Route("/tokens", signed_in(tokens.tokens)),
        Route("/tokens/assign", action(tokens.assign), methods=post),
        Route("/tokens/remove", action(tokens.remove), methods=post),
        Route("/tokens/import", upload(admin_pages.token_import), methods=post),
        Route("/keys", signed_in(admin_pages.keys)),
        Route("/keys/create", action(admin_pages.key_create), methods=post),
        Route("/keys/revoke", action(admin_pages.key_revoke), methods=post),
        Route("/farm", signed_in(admin_pages.farm)),
        Route("/audit", signed_in(audit_pages.audit)),
        Route("/audit.csv", signed_in(audit_pages.audit_csv)),
        Route("/static/{name}", static),
        Route("/healthz", healthz),
    ]


def create_app(
    cfg: ConsoleConfig, *, verify: Any = True, transport: Any = None, mounted: bool = False
) -> Starlette:
    """``transport``: reaches a node of the same process (tests, ``[console] enabled``);
    ``mounted``: the routes at the root, for ``openmfa serve`` to mount at the prefix."""
    sdk = AsyncSdkClient(cfg.nodes, cfg.api_key, timeout=40.0, verify=verify, transport=transport)
    console = Console(
        cfg=cfg,
        sdk=sdk,
        sessions=Sessions(cfg.idle_seconds, cfg.absolute_seconds),
        attempts=Attempts(cfg.attempts_per_minute),
        envs=i18n.environments(cfg.languages),
        key=cfg.session_key or secrets.token_bytes(32),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sdk.aclose()

    app = Starlette(
        routes=routes(console) if mounted else [Mount(cfg.prefix, routes=routes(console))],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, secure=console.secure, csp=CSP)],
    )
    app.state.console = console
    return app
