"""The page runner: what every page of the portal needs, in one object made per app
(:class:`Portal`), and the one wrapper (:func:`page`) that turns a view into an endpoint.

A view is a plain module-level ``async def view(ctx: Ctx) -> Response``; it is given the
request's :class:`Ctx` (its session, language, form and the :class:`Portal`) and never reads
cookies, checks a CSRF token or catches the node's errors itself. :func:`page` owns those
rules, the same for every page: the session made on a first visit (or restored from a carry
cookie), the CSRF token and Origin of a form post, the redirect of a signed-out person to the
sign-in page, what the node's errors mean to the person, and the cookies and ``no-store`` of
every answer.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from babel.support import NullTranslations
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import OpenMfaError, Reauthenticate, Unauthorized, Unavailable
from ..sdk.client import AsyncSdkClient
from . import i18n, seen
from .config import PortalConfig
from .forward_auth import Cookies, ForwardAuthConfig
from .limits import read_form_body
from .revocations import RevocationView
from .seen import CookieReports
from .sessions import CARRY, Attempts, Carried, Session, Sessions
from .theme import environments, static_dirs

log = logging.getLogger("openmfa.portal")
FORM_AGAIN = 200
"""A form shown again with what was wrong is a page like any other (a browser would log a
4xx status as a console error)."""
LANG_COOKIE = "openmfa-lang"
SIGN_IN_PAGES = frozenset(
    ["/sign-in", "/second-factor", "/confirm", "/push", "/push/wait", "/passkey"]
)
"""The pages of a sign-in, whose forms end at the page that asked for it."""
FLOW_SECONDS = 1800.0
"""How long an OpenID Connect request may wait for its sign-in (the widened form-action)."""


class PageError(Exception):
    """Shown on the page that was asked for, with its status (never a stack trace)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Portal:
    """One portal app's state, shared by all its pages: its configuration, the SDK client it
    reaches the nodes with, its sessions, and what it has learned from the nodes."""

    cfg: PortalConfig
    sdk: AsyncSdkClient
    sessions: Sessions
    carried: Carried | None
    attempts: Attempts
    envs: dict[str, tuple[jinja2.Environment, NullTranslations]]
    static_dirs: list[Path]
    fa: ForwardAuthConfig | None
    fa_cookies: Cookies | None
    revocations: RevocationView | None
    cookie_reports: CookieReports | None = None
    """Forward-auth's "last seen" of the sessions it lets through (sent by ``revocations``'s
    loop)."""
    told_kinds: OrderedDict[str, frozenset[str] | None] = field(default_factory=OrderedDict)
    """What the node said each sign-in's person can use, by the sign-in's ticket (None: a node
    that does not say)."""
    bypass_off_until: float = 0.0
    """Until when this portal knows the node gives no one-time bypass (``[portal]
    bypass_seconds = 0``, learned from its refusal; asked again after ten minutes)."""
    csp: str = ""
    """The pages' Content-Security-Policy (``theme.csp_for``); a page on the way back to an
    OpenID Connect relying party also lets a form go there (``Session.form_to``)."""
    provider: tuple[float, Any] | None = None
    """The OpenID Connect provider's metadata and keys from a node, and when they were read
    (``pages.oidc_service``)."""
    reached_at: float = 0.0
    reached: bool = False
    """Whether a node answered ``/healthz``'s last question, asked at ``reached_at``."""

    @classmethod
    def from_config(cls, cfg: PortalConfig, *, verify: Any = True, transport: Any = None) -> Portal:
        """``transport`` reaches a node of the same process."""
        sdk = AsyncSdkClient(
            cfg.nodes, cfg.api_key, timeout=40.0, verify=verify, transport=transport
        )
        fa = cfg.forward_auth
        revocations = (
            RevocationView(sdk.portal_sessions_ended, fa.revocation_poll_seconds,
                           fa.revocation_max_age_seconds)
            if fa is not None
            else None
        )  # fmt: skip
        reports = None
        if revocations is not None:
            reports = CookieReports(sdk.portal_cookies_seen)
            revocations.after = reports.send
        return cls(
            cfg=cfg,
            sdk=sdk,
            sessions=Sessions(cfg.idle_seconds, cfg.absolute_seconds),
            carried=Carried(cfg.session_key, cfg.idle_seconds) if cfg.session_key else None,
            attempts=Attempts(cfg.attempts_per_minute),
            envs=environments(cfg),
            static_dirs=static_dirs(cfg),
            fa=fa,
            fa_cookies=Cookies(fa) if fa is not None else None,
            revocations=revocations,
            cookie_reports=reports,
        )

    def secure(self, request: Request) -> bool:
        """The browser reached this portal over TLS (itself, or a trusted proxy says so)."""
        if self.cfg.secure != "auto":
            return self.cfg.secure == "always"
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "")
        return peer in self.cfg.trusted_proxies and proto == "https"

    def origin(self, request: Request) -> str:
        """The page's origin as the browser sees it (what a passkey is bound to)."""
        scheme = "https" if self.secure(request) else request.url.scheme
        return f"{scheme}://{request.headers.get('host', '')}"

    def address(self, request: Request) -> str:
        """The browser's address (a trusted proxy's last ``X-Forwarded-For`` hop)."""
        peer = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-for", "")
        if peer in self.cfg.trusted_proxies and forwarded:
            return forwarded.split(",")[-1].strip()
        return peer

    def cookie_name(self, request: Request) -> str:
        return "__Host-openmfa-portal" if self.secure(request) else "openmfa-portal"

    def remember_cookie(self, request: Request) -> str:
        """The cookie a remembered browser holds its token in (``pages.remembered``)."""
        return self.cookie_name(request) + "-remember"

    def language(self, request: Request) -> str:
        """The language chosen on the page, else the browser's best offered one."""
        chosen = request.cookies.get(LANG_COOKIE, "")
        if chosen in self.cfg.languages:
            return chosen
        return i18n.negotiate(request.headers.get("accept-language", ""), self.cfg.languages)


@dataclass
class Ctx:
    """One request to a page, as its view sees it."""

    portal: Portal
    request: Request
    session: Session
    lang: str
    env: jinja2.Environment
    form: FormData | None
    base: str
    translations: NullTranslations
    offered: tuple[str, ...]

    @property
    def sdk(self) -> AsyncSdkClient:
        return self.portal.sdk

    def _(self, message: str) -> str:
        """This request's language's text for ``message``."""
        return self.translations.gettext(message)

    def field(self, name: str, limit: int = 256) -> str:
        value = self.form.get(name, "") if self.form is not None else ""
        if not isinstance(value, str):
            raise PageError(self._("That form field must be text."))
        return value.strip()[:limit]

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def where(self) -> dict[str, str]:
        """Where the browser is, for the ``address`` and ``agent`` of a sign-in call and of a
        call whose change the person is told of (a method added or removed, the password): the
        node keeps them, sealed, with the audit rows (recent sign-ins; a notice's "From")."""
        return {
            "address": self.portal.address(self.request)[:64],
            "agent": self.request.headers.get("user-agent", "")[:512],
        }

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.url(path), status_code=303)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        notice, self.session.notice = self.session.notice, ""
        html = self.env.get_template(template).render(
            base=self.base,
            csrf=self.session.csrf,
            session=self.session,
            lang=self.lang,
            languages=[(code, i18n.NAMES[code]) for code in self.offered],
            notice=notice,
            request_path=self.request.url.path,
            **values,
        )
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")

    def limited(self) -> None:
        """Refuses the request when its address has made too many sign-in attempts."""
        if not self.portal.attempts.allow(self.portal.address(self.request)):
            raise PageError(
                self._("Too many attempts from your address. Wait a minute, then try again."), 429
            )


View = Callable[[Ctx], Awaitable[Response]]
"""A page's view: a module-level function of the request's :class:`Ctx`."""
Endpoint = Callable[[Request], Awaitable[Response]]


def same_origin(request: Request) -> bool:
    """A form post must come from this portal's own pages (ASVS 3.5.3)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def page(
    portal: Portal,
    view: View,
    *,
    public: bool = False,
    ends_only: bool = False,
    foreign: bool = False,
) -> Endpoint:
    """A page: the session (made on a first visit), the language, the CSRF and Origin checks
    of a form post, and what the node's errors mean to the person. ``ends_only``: a form that
    only ends things (sign-out) is taken from this portal's own pages even when this host's
    session had already ended — its CSRF token with it — so a person idle too long still ends
    the cookie the protected sites take. ``foreign``: a form another site posts here (an
    OpenID Connect authorization request, Entra ID's above all), taken without this portal's
    CSRF token; its view must act only on what the form says, never on the session it
    found."""
    sessions, carried = portal.sessions, portal.carried

    async def endpoint(request: Request) -> Response:
        lang = portal.language(request)
        env, translations = portal.envs[lang]
        name = portal.cookie_name(request)
        sid = request.cookies.get(name, "")
        s = sessions.get(sid)
        if s is None and carried is not None:  # signed in on another host, or before
            s = carried.restore(sessions, request.cookies.get(name + CARRY, ""), sid, time.time())
        fresh = s is None
        if s is None:
            s = sessions.new()
            if request.cookies.get(name):
                s.notice = "ended"
        base = request.scope.get("root_path", "")
        ctx = Ctx(portal, request, s, lang, env, None, base, translations, portal.cfg.languages)
        if request.method == "POST":
            wrong = await read_form_body(request)
            if wrong == "large":
                return ctx.render("error.html", 413, message=ctx._("That form is too large."))
            if wrong:
                return ctx.render(
                    "error.html", 400, message=ctx._("That request could not be read.")
                )
            refused = (
                await _take_foreign(ctx)
                if foreign
                else await _take_form(ctx, fresh=fresh, ends_only=ends_only)
            )
            if refused is not None:
                return finish(portal, request, refused, s, name, keep=not (foreign and fresh))
        if not public and not s.signed_in:
            if s.notice != "ended":
                s.notice = ""
            return finish(portal, request, ctx.redirect("/sign-in"), s, name)
        try:
            resp = await view(ctx)
        except Exception as e:
            resp = _failed(ctx, e)
        if ctx.session.signed_in and resp.status_code < 400:  # signed in now, then once a minute
            await seen.report(portal, request, ctx.session)
        # Another site's form comes without this portal's cookies (SameSite=Lax): the session
        # made for it is not the browser's, and a cookie for it would replace the person's
        # own — only a view that started a session of its own (Entra's request) sets one.
        keep = not (foreign and fresh and request.method == "POST" and ctx.session is s)
        return finish(portal, request, resp, ctx.session, name, keep=keep)

    endpoint.__name__ = view.__name__  # what /metrics counts it as
    return endpoint


async def _take_form(ctx: Ctx, *, fresh: bool, ends_only: bool) -> Response | None:
    """Reads a form post into ``ctx.form``; the refusal page when it does not carry this
    session's CSRF token or comes from another origin."""
    request, s = ctx.request, ctx.session
    form: FormData | None
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception:  # a malformed body is the sender's mistake: no token in it
        form = None
    sent = (form.get("csrf") if form is not None else None) or request.headers.get(
        "x-csrf-token", ""
    )
    expired = fresh and ends_only and bool(request.headers.get("origin"))
    if not same_origin(request) or (
        not expired
        and (
            fresh
            or not isinstance(sent, str)
            or not hmac.compare_digest(sent.encode(), s.csrf.encode())
        )
    ):
        log.warning("refused a form post without this portal's CSRF token")
        return ctx.render(
            "error.html",
            403,
            message=ctx._(
                "This form had expired or did not come from this portal. "
                "Go back, reload the page and try again."
            ),
        )
    ctx.form = form
    return None


async def _take_foreign(ctx: Ctx) -> Response | None:
    """Reads a form another site posted (no CSRF token: it was not made here)."""
    try:
        ctx.form = await ctx.request.form(max_files=0, max_fields=50)
    except Exception:  # a malformed body is the sender's mistake
        return ctx.render("error.html", 400, message=ctx._("That request could not be read."))
    return None


def _failed(ctx: Ctx, e: Exception) -> Response:
    """What a view's exception means to the person: a fresh sign-in, the sign-in page, or an
    error page with a sentence and a status (never a stack trace)."""
    request, s, sessions = ctx.request, ctx.session, ctx.portal.sessions
    if isinstance(e, Reauthenticate):
        s.next_page = (
            request.url.path.removeprefix(ctx.base) if request.method == "GET" else "/methods"
        )
        s.notice = "reauth"
        return ctx.redirect("/confirm")
    if isinstance(e, Unauthorized):
        if s.signed_in:  # the node's session token has ended: so has this session (its
            sessions.drop(s)  # cookie is deleted; the sign-in page starts a new one)
        return ctx.redirect("/sign-in")
    if isinstance(e, PageError):
        return ctx.render("error.html", e.status, message=e.message)
    if isinstance(e, Unavailable):
        log.warning("no node answered the portal")
        return ctx.render(
            "error.html",
            503,
            message=ctx._("The sign-in service cannot be reached just now. Try again in a minute."),
        )
    if isinstance(e, OpenMfaError):
        log.info("the node refused a portal call: %s (%s)", e.code, e)
        return ctx.render(
            "error.html", e.http_status if e.http_status < 500 else 502, message=str(e)
        )
    log.exception("a portal page failed", exc_info=e)
    return ctx.render(
        "error.html",
        500,
        message=ctx._(
            "Something went wrong on our side. Try again; if it goes on, tell your helpdesk."
        ),
    )


def finish(
    portal: Portal, request: Request, resp: Response, s: Session, name: str, *, keep: bool = True
) -> Response:
    """The session's cookies on the answer (set while it lives, else deleted; the carry
    cookie only for a signed-in session), and ``no-store``. Not ``keep``: the session is
    dropped and the browser's cookies are left as they are."""
    if not keep:
        portal.sessions.drop(s)
        resp.headers["Cache-Control"] = "no-store"
        return resp
    alive = portal.sessions.get(s.id) is s
    secure = portal.secure(request)
    if alive:
        resp.set_cookie(name, s.id, path="/", httponly=True, samesite="lax", secure=secure)
    else:
        resp.delete_cookie(name, path="/")
    if portal.carried is not None and alive and s.signed_in:
        resp.set_cookie(
            name + CARRY,
            portal.carried.seal(s),
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure,
        )
    elif request.cookies.get(name + CARRY):
        resp.delete_cookie(name + CARRY, path="/")
    resp.headers["Cache-Control"] = "no-store"
    html = resp.media_type is not None and resp.media_type.startswith("text/html")
    if html and portal.csp and on_the_way_back(request, s):
        # On the way back to a relying party: a form of this page (and the redirects after
        # it, which browsers hold to form-action) may go to that party's origin.
        resp.headers["Content-Security-Policy"] = portal.csp.replace(
            "form-action 'self'", f"form-action 'self' {s.form_to}"
        )
    return resp


def on_the_way_back(request: Request, s: Session) -> bool:
    """A page of the sign-in an OpenID Connect request sent the person to, while it is under
    way: only there may a form (and its redirects) go to the relying party's origin — not on
    the methods page of a person who gave the request up, nor an hour later."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return bool(s.form_to) and path in SIGN_IN_PAGES and time.time() - s.oidc_sent_at < FLOW_SECONDS


def plain(portal: Portal, route: Callable[[Portal, Request], Awaitable[Response]]) -> Endpoint:
    """A route that is not a page (no session, no form), given the portal."""

    async def endpoint(request: Request) -> Response:
        return await route(portal, request)

    endpoint.__name__ = route.__name__  # what /metrics counts it as
    return endpoint
