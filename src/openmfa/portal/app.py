"""The User Portal's pages (server-rendered, Jinja2; JavaScript only where a browser API or a
wait needs it). Every call about a person goes to the node with the session token the node gave
them after their password and second factor; the portal's own key can only start a sign-in.

Pages, under the configured prefix (``/portal``):

    GET  /                     -> /methods when signed in, else /sign-in
    GET  POST /sign-in         user name and password (the node's ``[portal] primary``)
    GET  POST /second-factor   a code (authenticator app, backup code), or a push
    POST /push                 send a push to the person's phone; GET /push shows the number
    POST /push/wait            (the page's script, or its button) the push's outcome
    GET  /methods              the person's methods; POST /methods/{id}/remove
    GET  POST /methods/{id}/name   a method's name of the person's own
    POST /app                  add an authenticator app: QR code and secret; POST /app/confirm
    POST /mobile-app           activate the mobile app (QR); GET /mobile-app/status
    POST /backup-codes         new backup codes, shown once
    GET  /sign-ins             the person's recent sign-ins
    GET  /sessions             where the person is signed in; POST /sessions/{ref}/end,
                               POST /sessions/remembered/{ref}/forget
    GET  POST /password        the person changes their password (the current one asked)
    GET  POST /confirm         re-authentication before a change of sign-in methods
    POST /sign-out             sign out; POST /language: the language chosen
    GET  POST /oidc/authorize  OpenID Connect: an application's sign-in (code + PKCE), or
                               Entra ID's external authentication method (POSTed, no CSRF)
    GET  /oidc/eam/finish      Entra ID's answer, POSTed back by the page's form
    POST /oidc/token           the code -> the ID token (the application's server; no CSRF)
    GET  /oidc/jwks, /.well-known/openid-configuration   the node's keys and metadata
    GET  /static/{file}        the theme's files

Security: a CSRF token on every form (and the Origin / Sec-Fetch-Site headers checked), the
session id renewed at each sign-in step, idle and absolute timeouts, rate-limited sign-in that
also counts toward the node's lockout, CSP without inline script, ``frame-ancestors 'none'``,
HSTS and ``__Host-`` Secure cookies over TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ..metrics import BuildInfo, RequestCounter, install_journal
from ..metrics import endpoint as metrics_endpoint
from .config import PortalConfig
from .forward_auth import ForwardAuthGate
from .pages import (
    account,
    enrol,
    methods,
    my_sessions,
    oidc,
    oidc_eam,
    oidc_service,
    password,
    push,
    remembered,
    service,
    sign_in,
    sign_out,
)
from .runner import Endpoint, Portal, View, page, plain
from .theme import SecurityHeaders, csp_for


def routes(portal: Portal) -> list[BaseRoute]:
    """Every page under its URL (relative to the portal's prefix)."""

    def public(view: View, *, ends_only: bool = False) -> Endpoint:
        return page(portal, view, public=True, ends_only=ends_only)

    def signed_in(view: View) -> Endpoint:
        return page(portal, view)

    def foreign(view: View) -> Endpoint:
        return page(portal, view, public=True, foreign=True)

    return [
        Route("/", public(sign_in.home)),
        Route("/sign-in", public(sign_in.sign_in), methods=["GET", "POST"]),
        Route("/second-factor", public(sign_in.second_factor), methods=["GET", "POST"]),
        Route("/push", public(push.push_start), methods=["POST"]),
        Route("/push", public(push.push_page), methods=["GET"]),
        Route("/push/wait", public(push.push_wait), methods=["POST"]),
        Route("/confirm", signed_in(sign_in.confirm), methods=["GET", "POST"]),
        Route("/methods", signed_in(methods.methods)),
        Route("/methods/{method_id}/remove", signed_in(methods.remove_method), methods=["POST"]),
        Route("/methods/{method_id}/default", signed_in(methods.make_default), methods=["POST"]),
        Route("/methods/{method_id}/name", signed_in(methods.rename), methods=["GET", "POST"]),
        Route("/app", signed_in(enrol.app_start), methods=["POST"]),
        Route("/app", signed_in(enrol.app_page), methods=["GET"]),
        Route("/app/confirm", signed_in(enrol.app_confirm), methods=["POST"]),
        Route("/token", signed_in(methods.token_page), methods=["GET"]),
        Route("/token", signed_in(methods.token_claim), methods=["POST"]),
        Route("/passkey", public(sign_in.passkey_sign_in), methods=["POST"]),
        Route("/passkeys/new", signed_in(enrol.passkey_new), methods=["POST"]),
        Route("/passkeys", signed_in(enrol.passkey_page), methods=["GET"]),
        Route("/passkeys", signed_in(enrol.passkey_save), methods=["POST"]),
        Route("/mobile-app", signed_in(enrol.mobile_app), methods=["POST"]),
        Route("/mobile-app", signed_in(enrol.mobile_app_page), methods=["GET"]),
        Route("/mobile-app/status", signed_in(enrol.mobile_app_status)),
        Route("/backup-codes", signed_in(methods.backup_codes), methods=["GET", "POST"]),
        Route("/sign-ins", signed_in(account.sign_ins)),
        Route("/sessions", signed_in(my_sessions.sessions)),
        Route("/sessions/{ref}/end", signed_in(my_sessions.end_session), methods=["POST"]),
        Route(
            "/sessions/remembered/{ref}/forget",
            signed_in(remembered.forget),
            methods=["POST"],
        ),
        Route("/profile", signed_in(account.profile), methods=["GET", "POST"]),
        Route("/bypass", signed_in(account.bypass), methods=["POST"]),
        Route("/password", signed_in(password.password), methods=["GET", "POST"]),
        Route("/sign-out", public(sign_out.sign_out, ends_only=True), methods=["POST"]),
        Route("/sign-out-everywhere", signed_in(sign_out.sign_out_everywhere), methods=["POST"]),
        Route("/language", public(account.choose_language), methods=["POST"]),
        Route("/oidc/authorize", foreign(oidc.authorize), methods=["GET", "POST"]),
        Route("/oidc/eam/finish", signed_in(oidc_eam.eam_finish)),
        Route("/oidc/token", plain(portal, oidc_service.token), methods=["POST"]),
        Route("/oidc/jwks", plain(portal, oidc_service.jwks)),
        Route("/.well-known/openid-configuration", plain(portal, oidc_service.discovery)),
        Route("/static/{name:path}", plain(portal, service.static)),
        Route("/healthz", plain(portal, service.healthz)),
    ]


def create_app(
    cfg: PortalConfig,
    *,
    verify: Any = True,
    transport: Any = None,
    mounted: bool = False,
) -> Starlette:
    """``mounted``: the routes at the root, for ``openmfa serve`` to mount at its prefix;
    ``transport`` reaches a node of the same process."""
    portal = Portal.from_config(cfg, verify=verify, transport=transport)
    portal.csp = csp_for(portal.fa)
    fa, revocations = portal.fa, portal.revocations

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if revocations is not None:
            revocations.start()
        try:
            yield
        finally:
            if revocations is not None:
                await revocations.stop()
            await portal.sdk.aclose()

    inner = routes(portal)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BuildInfo("portal", install_journal()))

    async def metrics(request: Request) -> Response:
        return metrics_endpoint(registry)

    outer = [] if mounted else [Route("/metrics", metrics), Mount(cfg.prefix, routes=inner)]
    app = Starlette(
        routes=inner if mounted else outer,
        lifespan=lifespan,
        middleware=[
            *([] if mounted else [Middleware(RequestCounter, registry=registry, part="portal")]),
            *(
                [
                    Middleware(
                        ForwardAuthGate,
                        cfg=fa,
                        path=cfg.prefix + "/auth",
                        view=revocations,
                        reports=portal.cookie_reports,
                    )
                ]
                if fa is not None and revocations is not None
                else []
            ),
            Middleware(SecurityHeaders, secure=portal.secure, csp=csp_for(fa)),
        ],
    )
    app.state.sessions = portal.sessions
    app.state.portal = portal
    return app
