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
    POST /app                  add an authenticator app: QR code and secret; POST /app/confirm
    POST /mobile-app           activate the mobile app (QR); GET /mobile-app/status
    POST /backup-codes         new backup codes, shown once
    GET  /sign-ins             the person's recent sign-ins
    GET  POST /confirm         re-authentication before a change of sign-in methods
    POST /sign-out             sign out; POST /language: the language chosen
    GET  /static/{file}        the theme's files

Security: a CSRF token on every form (and the Origin / Sec-Fetch-Site headers checked), the
session id renewed at each sign-in step, idle and absolute timeouts, rate-limited sign-in that
also counts toward the node's lockout, CSP without inline script, ``frame-ancestors 'none'``,
HSTS and ``__Host-`` Secure cookies over TLS.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jinja2
import segno
from babel.support import NullTranslations
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OpenMfaError,
    Reauthenticate,
    Unauthorized,
    Unavailable,
)
from ..metrics import BuildInfo, RequestCounter, install_journal
from ..metrics import endpoint as metrics_endpoint
from ..sdk.client import AsyncSdkClient
from ..sdk.models import AuditView, MethodView, PortalStep
from . import i18n
from .config import PACKAGED_THEMES, PortalConfig
from .forward_auth import Cookies, ForwardAuthGate, in_domain
from .revocations import RevocationView
from .sessions import CARRY, MAX_IDS, MAX_SESSIONS, Attempts, Carried, Session, Sessions

log = logging.getLogger("openmfa.portal")
MAX_FORM = 16 * 1024
FORM_AGAIN = 200
"""A form shown again with what was wrong is a page like any other (a browser would log a
4xx status as a console error)."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LANG_COOKIE = "openmfa-lang"
DEFAULT_KINDS = frozenset(["totp", "hotp", "push", "passkey"])
"""Methods a person may choose to be asked for first (backup and access codes are for
emergencies)."""
ENDED = frozenset(["locked", "disabled", "unknown_user"])
"""Second-factor refusals that end the sign-in: the person starts over at the sign-in page."""
GET_PAGES = frozenset(
    [
        "/",
        "/sign-in",
        "/second-factor",
        "/push",
        "/methods",
        "/app",
        "/mobile-app",
        "/sign-ins",
        "/confirm",
        "/passkeys",
        "/profile",
    ]
)
"""Where the language form may send the browser back to."""


class PageError(Exception):
    """Shown on the page that was asked for, with its status (never a stack trace)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Ctx:
    request: Request
    session: Session
    lang: str
    env: jinja2.Environment
    form: FormData | None
    base: str
    translations: NullTranslations
    offered: tuple[str, ...]

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


Handler = Callable[[Ctx], Awaitable[Response]]


def _theme_loader(cfg: PortalConfig) -> jinja2.BaseLoader:
    """The chosen theme's templates, falling back to the shipped Default's (a custom theme may
    change just the pages it wants)."""
    folders = [cfg.themes_dir / cfg.theme / "templates", PACKAGED_THEMES / "Default" / "templates"]
    return jinja2.FileSystemLoader([str(f) for f in folders if f.is_dir()])


def _environments(
    cfg: PortalConfig,
) -> dict[str, tuple[jinja2.Environment, NullTranslations]]:
    loader = _theme_loader(cfg)
    envs = {}
    for lang in cfg.languages:
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # templates are read once (a theme changed: restart the portal)
        )
        translations = i18n.load(lang)
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.globals["when"] = when
        envs[lang] = (env, translations)
    return envs


def create_app(
    cfg: PortalConfig,
    *,
    verify: Any = True,
    transport: Any = None,
    mounted: bool = False,
) -> Starlette:
    """``mounted``: the routes at the root, for ``openmfa serve`` to mount at its prefix;
    ``transport`` reaches a node of the same process."""
    sdk = AsyncSdkClient(cfg.nodes, cfg.api_key, timeout=40.0, verify=verify, transport=transport)
    fa = cfg.forward_auth
    fa_cookies = Cookies(fa) if fa is not None else None
    revocations = (
        RevocationView(sdk.portal_sessions_ended, fa.revocation_poll_seconds,
                       fa.revocation_max_age_seconds)
        if fa is not None
        else None
    )  # fmt: skip
    csp = CSP
    if fa is not None:  # a sign-in form's answer goes back to a protected site
        sites = f"{fa.cookie_domain}:* *.{fa.cookie_domain}:*"
        csp = CSP.replace("form-action 'self'", f"form-action 'self' {sites}")
    sessions = Sessions(cfg.idle_seconds, cfg.absolute_seconds)
    carried = Carried(cfg.session_key, cfg.idle_seconds) if cfg.session_key else None
    attempts = Attempts(cfg.attempts_per_minute)
    told_kinds: OrderedDict[str, frozenset[str] | None] = OrderedDict()
    """What the node said each sign-in's person can use, by the sign-in's ticket (None: a node
    that does not say)."""
    envs = _environments(cfg)
    static_dirs = [cfg.themes_dir / cfg.theme / "static", PACKAGED_THEMES / "Default" / "static"]

    def secure(request: Request) -> bool:
        if cfg.secure != "auto":
            return cfg.secure == "always"
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "")
        return peer in cfg.trusted_proxies and proto == "https"

    def origin(request: Request) -> str:
        """The page's origin as the browser sees it (what a passkey is bound to)."""
        scheme = "https" if secure(request) else request.url.scheme
        return f"{scheme}://{request.headers.get('host', '')}"

    def address(request: Request) -> str:
        peer = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-for", "")
        if peer in cfg.trusted_proxies and forwarded:
            return forwarded.split(",")[-1].strip()
        return peer

    def cookie_name(request: Request) -> str:
        return "__Host-openmfa-portal" if secure(request) else "openmfa-portal"

    def language(request: Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE, "")
        if chosen in cfg.languages:
            return chosen
        return i18n.negotiate(request.headers.get("accept-language", ""), cfg.languages)

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
        handler: Handler, *, public: bool = False, ends_only: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page: the session (made on a first visit), the language, the CSRF and Origin
        checks of a form post, and what the node's errors mean to the person. ``ends_only``:
        a form that only ends things (sign-out) is taken from this portal's own pages even
        when this host's session had already ended — its CSRF token with it — so a person
        idle too long still ends the cookie the protected sites take."""

        async def endpoint(request: Request) -> Response:
            lang = language(request)
            env, translations = envs[lang]
            name = cookie_name(request)
            sid = request.cookies.get(name, "")
            s = sessions.get(sid)
            if s is None and carried is not None:  # signed in on another host, or before
                s = carried.restore(
                    sessions, request.cookies.get(name + CARRY, ""), sid, time.time()
                )
            fresh = s is None
            if s is None:
                s = sessions.new()
                if request.cookies.get(name):
                    s.notice = "ended"
            form = None
            ctx = Ctx(
                request,
                s,
                lang,
                env,
                None,
                request.scope.get("root_path", ""),
                translations,
                cfg.languages,
            )
            if request.method == "POST":
                if int(request.headers.get("content-length") or 0) > MAX_FORM:
                    return ctx.render("error.html", 413, message=ctx._("That form is too large."))
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
                    resp = ctx.render(
                        "error.html",
                        403,
                        message=ctx._(
                            "This form had expired or did not come from this portal. "
                            "Go back, reload the page and try again."
                        ),
                    )
                    return _finish(request, resp, s, name)
                ctx.form = form
            if not public and not s.signed_in:
                if s.notice != "ended":
                    s.notice = ""
                return _finish(request, ctx.redirect("/sign-in"), s, name)
            try:
                resp = await handler(ctx)
            except Reauthenticate:
                s.next_page = (
                    request.url.path.removeprefix(ctx.base)
                    if request.method == "GET"
                    else "/methods"
                )
                s.notice = "reauth"
                resp = ctx.redirect("/confirm")
            except Unauthorized:
                if s.signed_in:  # the node's session token has ended
                    sessions.drop(s)
                    s = sessions.new()
                    s.notice = "ended"
                resp = ctx.redirect("/sign-in")
            except PageError as e:
                resp = ctx.render("error.html", e.status, message=e.message)
            except Unavailable:
                log.warning("no node answered the portal")
                resp = ctx.render(
                    "error.html",
                    503,
                    message=ctx._(
                        "The sign-in service cannot be reached just now. Try again in a minute."
                    ),
                )
            except OpenMfaError as e:
                log.info("the node refused a portal call: %s (%s)", e.code, e)
                resp = ctx.render(
                    "error.html", e.http_status if e.http_status < 500 else 502, message=str(e)
                )
            except Exception:
                log.exception("a portal page failed")
                resp = ctx.render(
                    "error.html",
                    500,
                    message=ctx._(
                        "Something went wrong on our side. Try again; if it goes on, tell "
                        "your helpdesk."
                    ),
                )
            return _finish(request, resp, ctx.session, name)

        endpoint.__name__ = handler.__name__  # what /metrics counts it as
        return endpoint

    def _finish(request: Request, resp: Response, s: Session, name: str) -> Response:
        alive = sessions.get(s.id) is s
        if alive:
            resp.set_cookie(
                name,
                s.id,
                path="/",
                httponly=True,
                samesite="lax",
                secure=secure(request),
            )
        else:
            resp.delete_cookie(name, path="/")
        if carried is not None and alive and s.signed_in:
            resp.set_cookie(
                name + CARRY,
                carried.seal(s),
                path="/",
                httponly=True,
                samesite="lax",
                secure=secure(request),
            )
        elif request.cookies.get(name + CARRY):
            resp.delete_cookie(name + CARRY, path="/")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- signing in ---------------------------------------------------------------------

    async def home(ctx: Ctx) -> Response:
        return ctx.redirect("/methods" if ctx.session.signed_in else "/sign-in")

    def limited(ctx: Ctx) -> None:
        if not attempts.allow(address(ctx.request)):
            raise PageError(
                ctx._("Too many attempts from your address. Wait a minute, then try again."), 429
            )

    async def sign_in(ctx: Ctx) -> Response:
        s = ctx.session
        rd = ctx.request.query_params.get("rd", "")
        if rd and fa is not None:
            if len(rd) > 2048 or not in_domain(rd, fa.cookie_domain):
                raise PageError(
                    ctx._("That return address is not a site of this sign-in. Sign in here.")
                )
            s.return_to = rd
        if s.signed_in and not s.reauth:
            if s.return_to:
                return await back_to_site(ctx)
            return ctx.redirect("/methods")
        if ctx.request.method == "GET":
            return ctx.render("sign_in.html", reauth=False, error="", user="")
        limited(ctx)
        user = ctx.field("user", 128)
        password = ctx.field("password", 128)
        if not user or not password:
            return ctx.render(
                "sign_in.html",
                FORM_AGAIN,
                reauth=False,
                user=user,
                error=ctx._("Type your user name and your password."),
            )
        try:
            step = await sdk.portal_sign_in(user, password)
        except InvalidInput:
            step = PortalStep(accepted=False, reason="wrong_password")
        if not step.accepted:
            return ctx.render(
                "sign_in.html", FORM_AGAIN, reauth=False, user=user, error=refusal(ctx, step.reason)
            )
        sessions.renew(s)
        s.user, s.ticket, s.reauth, s.prefer = user, step.ticket, False, step.prefer
        remember_kinds(step)
        if step.token:  # no method yet, and the node lets people add their first one
            s.next_page = "/methods"
            resp = await signed_in(ctx, step)
            s.notice = "first-method"
            return resp
        return ctx.redirect("/second-factor")

    async def confirm(ctx: Ctx) -> Response:
        """Re-authentication of the signed-in person: password, then a second factor."""
        s = ctx.session
        if ctx.request.method == "GET":
            return ctx.render("sign_in.html", reauth=True, error="", user=s.user)
        limited(ctx)
        password = ctx.field("password", 128)
        step = await sdk.portal_sign_in(s.user, password) if password else None
        if step is None or not step.accepted:
            reason = step.reason if step is not None else "wrong_password"
            return ctx.render(
                "sign_in.html", FORM_AGAIN, reauth=True, user=s.user, error=refusal(ctx, reason)
            )
        sessions.renew(s)
        s.ticket, s.reauth, s.prefer = step.ticket, True, step.prefer
        remember_kinds(step)
        return ctx.redirect("/second-factor")

    def remember_kinds(step: PortalStep) -> None:
        if step.ticket:
            told_kinds[step.ticket] = None if step.kinds is None else frozenset(step.kinds)
            while len(told_kinds) > MAX_SESSIONS:
                told_kinds.popitem(last=False)

    def can_push(s: Session) -> bool:
        """The person has the mobile app (or the node did not say: offered, as before)."""
        kinds = told_kinds.get(s.ticket)
        return kinds is None or "push" in kinds

    async def second_factor(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.ticket:
            return ctx.redirect("/methods" if s.signed_in else "/sign-in")
        if ctx.request.method == "GET":
            return await second_factor_page(ctx, "")
        limited(ctx)
        code = ctx.field("code", 64).replace(" ", "").replace("-", "")
        if not code:
            return await second_factor_page(ctx, ctx._("Type the code your app shows."))
        try:
            step = await sdk.portal_second_factor(s.ticket, code)
        except InvalidInput:
            step = PortalStep(accepted=False, reason="malformed")
        return await signed_in(ctx, step)

    async def second_factor_page(ctx: Ctx, error: str, status: int = 200) -> Response:
        """The second step's page, the one place it is rendered: the code form, the push
        button, and a passkey when the person has one. When the node has ended this sign-in
        (the person is locked, disabled or unknown: no ticket any more), the sign-in page
        with ``error`` instead: they start over."""
        s = ctx.session
        if not s.ticket:
            return ctx.render("sign_in.html", FORM_AGAIN, reauth=s.reauth, user=s.user, error=error)
        options = ""
        try:
            offer = await sdk.portal_passkey_options(s.ticket, origin(ctx.request))
            options, s.passkey_challenge = offer.options, offer.challenge
        except InvalidInput:
            s.passkey_challenge = ""  # no passkey (or none for this origin): codes and push
        return ctx.render(
            "second_factor.html",
            status,
            error=error,
            passkey_options=options,
            prefer=s.prefer,
            push=can_push(s),
        )

    async def passkey_sign_in(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.ticket:
            return ctx.redirect("/sign-in")
        limited(ctx)
        credential = ctx.field("credential", 16384)
        if not credential or not s.passkey_challenge:
            return await second_factor_page(
                ctx, ctx._("Passkeys need JavaScript in your browser. Type a code instead.")
            )
        try:
            step = await sdk.portal_passkey(s.ticket, s.passkey_challenge, credential)
        except InvalidInput:
            step = PortalStep(accepted=False, reason="wrong_passkey")
        return await signed_in(ctx, step)

    async def signed_in(ctx: Ctx, step: PortalStep) -> Response:
        """A second factor's answer: signed in, or the second step again with why not (the
        sign-in page when the node ended the sign-in)."""
        s = ctx.session
        if not step.accepted:
            if step.reason in ENDED:
                s.ticket = ""
            return await second_factor_page(ctx, refusal(ctx, step.reason), FORM_AGAIN)
        now = time.time()
        sessions.renew(s)
        s.token, s.token_expires, s.ticket, s.push_id = step.token, step.expires_at, "", ""
        s.signed_in_at = now
        if not s.reauth:
            s.created = now  # the absolute timeout counts from the sign-in
        was_reauth, s.reauth = s.reauth, False
        target, s.next_page = s.next_page or "/methods", ""
        if was_reauth and s.removing:
            await finish_removal(ctx)
        if s.return_to and not was_reauth:
            return await back_to_site(ctx)
        return ctx.redirect(target)

    async def back_to_site(ctx: Ctx) -> Response:
        """Forward-auth: the cookie the proxies check, then back to the protected site."""
        assert fa is not None
        s = ctx.session
        target, s.return_to = s.return_to, ""
        me = await sdk.portal_me(s.token)
        assert fa_cookies is not None
        if me.session_id and me.session_id not in s.session_ids:  # what a sign-out ends
            s.session_ids = [*s.session_ids, me.session_id][-MAX_IDS:]
        value = fa_cookies.issue(
            me.user.name,
            me.user.email,
            me.user.display_name,
            time.time(),
            session=me.session_id,
            subject=me.subject,
            issued_at=me.session_issued_at,
        )
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(
            fa.cookie_name,
            value,
            max_age=int(fa.session_seconds),
            domain=fa.cookie_domain,
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure(ctx.request),
        )
        return resp

    async def push_start(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.ticket:
            return ctx.redirect("/sign-in")
        limited(ctx)
        no_app = ctx._(
            "You have no mobile app activated, so no push can be sent. Type a code instead."
        )
        if not can_push(s):  # not asked of the node: it would count as a wrong code
            return await second_factor_page(ctx, no_app, FORM_AGAIN)
        step = await sdk.portal_push(s.ticket)
        if step.pending is None:
            if step.reason in ENDED:
                s.ticket = ""
            # No push device: "no_method", or "malformed" from a node that took "push" for a
            # code of the person's other methods.
            message = (
                no_app if step.reason in ("no_method", "malformed") else refusal(ctx, step.reason)
            )
            return await second_factor_page(ctx, message, FORM_AGAIN)
        s.push_id, s.push_number = step.pending.id, step.pending.number
        return ctx.redirect("/push")

    async def push_page(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.push_id:
            return ctx.redirect("/second-factor")
        return ctx.render("push.html", number=s.push_number, error="")

    async def push_wait(ctx: Ctx) -> Response:
        """The push's outcome: JSON for the page's script (``X-CSRF-Token``), a page for its
        button (no script)."""
        s = ctx.session
        script = "x-csrf-token" in ctx.request.headers
        if not s.push_id or not s.ticket:
            if script:
                return JSONResponse({"state": "gone", "next": ctx.url("/sign-in")})
            return ctx.redirect("/sign-in")
        step = await sdk.portal_push_collect(s.ticket, s.push_id, wait=20 if script else 0)
        if step.accepted:
            resp = await signed_in(ctx, step)
            if script:
                out = JSONResponse({"state": "approved", "next": resp.headers["location"]})
                return out
            return resp
        if step.reason == "pending":
            if script:
                return JSONResponse({"state": "pending"})
            return ctx.render(
                "push.html",
                FORM_AGAIN,
                number=s.push_number,
                error=ctx._("Not approved yet. Approve it on your phone, then try again."),
            )
        s.push_id = ""
        message = refusal(ctx, step.reason)
        if script:
            return JSONResponse(
                {"state": "refused", "message": message, "next": ctx.url("/second-factor")}
            )
        return await second_factor_page(ctx, message, FORM_AGAIN)

    # -- signed in ----------------------------------------------------------------------

    async def methods(ctx: Ctx) -> Response:
        ctx.session.removing = ""  # a removal not confirmed is forgotten
        me = await sdk.portal_me(ctx.session.token)
        names = kind_names(ctx)
        return ctx.render(
            "methods.html",
            user=me.user,
            methods=me.methods,
            names={m.id: method_name(ctx, m, names) for m in me.methods},
            kinds=names,
            default=me.user.default_method,
            can_default=DEFAULT_KINDS,
        )

    async def make_default(ctx: Ctx) -> Response:
        """The method this person is asked for first at their next sign-in."""
        try:
            await sdk.portal_set_default(ctx.session.token, ctx.request.path_params["method_id"])
        except NotFound:
            raise PageError(ctx._("That sign-in method does not exist (any more)."), 404) from None
        except Conflict:
            raise PageError(
                ctx._("Choosing a default method is not possible until the upgrade is done."), 409
            ) from None
        ctx.session.notice = "default-chosen"
        return ctx.redirect("/methods")

    async def remove_method(ctx: Ctx) -> Response:
        """Removing a method always asks for a fresh sign-in first (password and a second
        factor); the removal is done right after it."""
        s = ctx.session
        s.removing = ctx.request.path_params["method_id"][:64]
        s.next_page, s.notice = "/methods", "reauth"
        return ctx.redirect("/confirm")

    async def finish_removal(ctx: Ctx) -> None:
        s = ctx.session
        method_id, s.removing = s.removing, ""
        try:
            await sdk.portal_remove_method(s.token, method_id)
        except NotFound:
            raise PageError(ctx._("That sign-in method does not exist (any more)."), 404) from None
        s.notice = "removed"

    async def app_start(ctx: Ctx) -> Response:
        s = ctx.session
        label = ctx.field("label", 64) or ctx._("Authenticator app")
        offer = await sdk.portal_totp_start(s.token, label)
        s.offer, s.offer_secret, s.offer_uri, s.offer_label = (
            offer.offer,
            offer.secret,
            offer.otpauth_uri,
            label,
        )
        return ctx.redirect("/app")

    async def app_page(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.offer:
            return ctx.redirect("/methods")
        return ctx.render(
            "app.html",
            qr=segno.make(s.offer_uri, error="m").png_data_uri(scale=5, border=4),
            secret=" ".join(s.offer_secret[i : i + 4] for i in range(0, len(s.offer_secret), 4)),
            label=s.offer_label,
            error="",
        )

    async def app_confirm(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.offer:
            return ctx.redirect("/methods")
        code = ctx.field("code", 64).replace(" ", "")
        try:
            await sdk.portal_totp_confirm(s.token, s.offer, code)
        except InvalidInput:
            return ctx.render(
                "app.html",
                FORM_AGAIN,
                qr=segno.make(s.offer_uri, error="m").png_data_uri(scale=5, border=4),
                secret=" ".join(
                    s.offer_secret[i : i + 4] for i in range(0, len(s.offer_secret), 4)
                ),
                label=s.offer_label,
                error=ctx._(
                    "That is not the code your app shows for this secret. Check that the "
                    "phone's clock is right and type the code it shows now."
                ),
            )
        s.offer = s.offer_secret = s.offer_uri = ""  # the secret is never shown again
        s.notice = "app-added"
        return ctx.redirect("/methods")

    async def token_page(ctx: Ctx) -> Response:
        return ctx.render("token.html", serial="", error="")

    async def token_claim(ctx: Ctx) -> Response:
        """A person adds the hardware token in their hand: its serial and a code it shows."""
        serial, code = ctx.field("serial", 64).strip(), ctx.field("code", 64).replace(" ", "")
        try:
            await sdk.portal_claim_token(ctx.session.token, serial, code)
        except (InvalidInput, Conflict) as exc:
            error = (
                ctx._("Too many wrong codes. Please try again in 15 minutes.")
                if isinstance(exc, Conflict) and "too many" in exc.message
                else ctx._("Adding a hardware token is not possible until the upgrade is done.")
                if isinstance(exc, Conflict)
                else ctx._(
                    "That serial number and code do not match a token that can be added. "
                    "Check the serial number and type the code the token shows now."
                )
            )
            return ctx.render("token.html", FORM_AGAIN, serial=serial, error=error)
        ctx.session.notice = "token-added"
        return ctx.redirect("/methods")

    async def passkey_new(ctx: Ctx) -> Response:
        s = ctx.session
        offer = await sdk.portal_passkey_register_options(s.token, origin(ctx.request))
        s.passkey_options, s.passkey_challenge = offer.options, offer.challenge
        return ctx.redirect("/passkeys")

    async def passkey_page(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.passkey_options:
            return ctx.redirect("/methods")
        return ctx.render("passkey.html", passkey_options=s.passkey_options, error="")

    async def passkey_save(ctx: Ctx) -> Response:
        s = ctx.session
        if not s.passkey_options:
            return ctx.redirect("/methods")
        credential = ctx.field("credential", 16384)
        label = ctx.field("label", 64) or ctx._("Passkey")
        error = ""
        if not credential:
            error = ctx._("Passkeys need JavaScript in your browser.")
        else:
            try:
                await sdk.portal_passkey_register(s.token, s.passkey_challenge, credential, label)
            except InvalidInput:
                error = ctx._("The passkey could not be saved. Try again.")
        if error:
            return ctx.render(
                "passkey.html", FORM_AGAIN, passkey_options=s.passkey_options, error=error
            )
        s.passkey_options = s.passkey_challenge = ""
        s.notice = "passkey-added"
        return ctx.redirect("/methods")

    async def mobile_app(ctx: Ctx) -> Response:
        s = ctx.session
        me = await sdk.portal_me(s.token)
        code = await sdk.portal_activation(s.token, ctx.field("label", 64))
        s.push_methods_before = sum(1 for m in me.methods if m.kind == "push")
        s.activation = {"code": code.code, "url": code.url, "qr": code.qr_text}
        return ctx.redirect("/mobile-app")

    async def mobile_app_page(ctx: Ctx) -> Response:
        a = ctx.session.activation
        if not a:
            return ctx.redirect("/methods")
        return ctx.render(
            "mobile_app.html",
            qr=segno.make(a["qr"], error="m").png_data_uri(scale=5, border=4),
            code=a["code"],
            url=a["url"],
        )

    async def mobile_app_status(ctx: Ctx) -> Response:
        s = ctx.session
        me = await sdk.portal_me(s.token)
        done = bool(s.activation) and (
            sum(1 for m in me.methods if m.kind == "push") > s.push_methods_before
        )
        if done:
            s.activation = {}
            s.notice = "activated"
        return JSONResponse({"activated": done, "next": ctx.url("/methods")})

    async def backup_codes(ctx: Ctx) -> Response:
        s = ctx.session
        if ctx.request.method == "POST":
            done = await sdk.portal_backup_codes(s.token)
            s.shown_once = list(done.backup_codes or [])
            return ctx.redirect("/backup-codes")
        codes, s.shown_once = s.shown_once, []
        if not codes:
            return ctx.redirect("/methods")
        return ctx.render("backup_codes.html", codes=codes)

    async def sign_ins(ctx: Ctx) -> Response:
        events = await sdk.portal_sign_ins(ctx.session.token, 50)
        return ctx.render("sign_ins.html", events=[(e, describe(ctx, e)) for e in events])

    async def sign_out(ctx: Ctx) -> Response:
        """This session ends on every host, and so does every forward-auth cookie it gave
        (re-authentications included) and the one this browser holds — even when this
        portal's own session had already ended (idle) while the cookie lived on."""
        s = ctx.session
        ended: dict[str, list[str]] = {}
        if s.user and s.session_ids:
            ended[s.user] = list(s.session_ids)
        held = ctx.request.cookies.get(fa.cookie_name, "") if fa is not None else ""
        bearer = fa_cookies.check(held.encode(), time.time()) if fa_cookies and held else None
        if bearer is not None and bearer.session:
            ended.setdefault(bearer.user, []).append(bearer.session)
        try:
            if s.signed_in:
                await sdk.portal_sign_out(s.token)
            for user, ids in ended.items():
                await sdk.portal_end_sessions(user, list(dict.fromkeys(ids))[:MAX_IDS])
        except OpenMfaError as exc:  # ended already, no node, an older node: this host's
            log.warning("sign-out not recorded at the node: %s", exc)  # session ends here
        sessions.drop(ctx.session)
        fresh = sessions.new()
        fresh.notice = "signed-out"
        ctx.session = fresh
        resp = ctx.redirect("/sign-in")
        if fa is not None:  # signed out of the protected sites too
            resp.delete_cookie(fa.cookie_name, domain=fa.cookie_domain, path="/")
        return resp

    bypass_off = {"until": 0.0}
    """Until when this portal knows the node gives no one-time bypass (``[portal]
    bypass_seconds = 0``, learned from its refusal; asked again after ten minutes)."""

    async def profile(ctx: Ctx) -> Response:
        """My details: the phone number (kept for the helpdesk: no code is sent to it), and a
        one-time bypass where the node gives one."""
        s = ctx.session
        error = ""
        if ctx.request.method == "POST":
            try:
                await sdk.portal_set_phone(s.token, ctx.field("phone", 40))
                s.notice = "phone-saved"
                return ctx.redirect("/profile")
            except InvalidInput:
                error = ctx._(
                    "That is not a phone number we can use. Type it with its country code, "
                    "like +31 6 12345678."
                )
        return await profile_page(ctx, error)

    async def profile_page(ctx: Ctx, error: str = "", bypass_error: str = "") -> Response:
        me = await sdk.portal_me(ctx.session.token)
        return ctx.render(
            "profile.html",
            FORM_AGAIN if error or bypass_error else 200,
            user=me.user,
            error=error,
            bypass_error=bypass_error,
            offer_bypass=bool(me.bypass_seconds)
            if me.bypass_seconds is not None
            else time.monotonic() >= bypass_off["until"],  # an older node: learned by asking
        )

    async def bypass(ctx: Ctx) -> Response:
        try:
            granted = await sdk.portal_bypass(ctx.session.token)
        except Forbidden as e:
            if isinstance(e, Reauthenticate):
                raise
            bypass_off["until"] = time.monotonic() + 600
            return await profile_page(
                ctx,
                bypass_error=ctx._(
                    "A one-time bypass is not offered here. If you cannot use your sign-in "
                    "methods, ask your helpdesk."
                ),
            )
        ctx.session.notice = "bypass"
        ctx.session.bypass_until = granted.bypass_until
        return ctx.redirect("/profile")

    async def sign_out_everywhere(ctx: Ctx) -> Response:
        """End every session of this person: the node voids every session token of theirs
        (other portals, other browsers), and this portal forgets its own at once."""
        notice = "signed-out-everywhere"
        try:
            await sdk.portal_sign_out_everywhere(ctx.session.token)
        except (Conflict, NotFound):  # a node not yet upgraded: this portal's sessions only
            notice = "signed-out-here"
        sessions.drop_user(ctx.session.user)
        fresh = sessions.new()
        fresh.notice = notice
        ctx.session = fresh
        return ctx.redirect("/sign-in")

    async def choose_language(ctx: Ctx) -> Response:
        chosen = ctx.field("lang", 8)
        back = ctx.field("back", 200)
        back = back.removeprefix(ctx.base)
        if back not in GET_PAGES:
            back = "/"
        resp = RedirectResponse(ctx.url(back), status_code=303)
        if chosen in cfg.languages:
            resp.set_cookie(
                LANG_COOKIE,
                chosen,
                max_age=365 * 86400,
                path="/",
                samesite="lax",
                secure=secure(ctx.request),
                httponly=True,
            )
        return resp

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        for folder in static_dirs:
            path = (folder / name).resolve()
            if path.is_relative_to(folder.resolve()) and path.is_file():
                return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
        return Response("not found", status_code=404, media_type="text/plain")

    reach = {"at": 0.0, "ok": False}

    async def healthz(request: Request) -> Response:
        """``ok`` when a node answered within the last two seconds (asked at most that often),
        ``degraded`` otherwise: the portal serves, but nobody can sign in."""
        now = time.monotonic()
        if now - reach["at"] > 2:
            reach["at"] = now
            try:
                await sdk.version()
                reach["ok"] = True
            except OpenMfaError:
                reach["ok"] = False
        status = "ok" if reach["ok"] else "degraded"
        return JSONResponse({"status": status, "sessions": len(sessions)})

    def refusal(ctx: Ctx, reason: str) -> str:
        _ = ctx._
        messages = {
            "wrong_password": _("The user name or password is not right."),
            "wrong_code": _("That code is not right. Type the code your app shows now."),
            "replay": _("That code was used already. Wait for the next one."),
            "malformed": _("That is not a code. Type the digits your app shows."),
            "locked": _(
                "Your account is locked after too many failed attempts. Try again later, "
                "or ask your helpdesk."
            ),
            "disabled": _("Your account is disabled. Ask your helpdesk."),
            "unknown_user": _("The user name or password is not right."),
            "no_method": _(
                "You have no sign-in method yet, and this portal cannot add the first one "
                "by itself. Ask your helpdesk."
            ),
            "declined": _("The push was declined on the phone."),
            "expired": _("The push was not answered in time. Send a new one."),
            "fraud": _(
                "You reported the push as not yours; push is now blocked. Your "
                "helpdesk has been told."
            ),
            "push_limited": _("Too many pushes just now. Wait a little, then try again."),
            "push_blocked": _(
                "Push is blocked for your account. Type a code, or ask your helpdesk."
            ),
            "push_unavailable": _("Push cannot be sent just now. Type a code instead."),
            "master_unreachable": _("The sign-in service is busy. Try again in a minute."),
            "wrong_passkey": _("The passkey was not accepted. Try again, or type a code."),
        }
        return messages.get(reason, _("The sign-in was refused.") + f" ({reason})")

    def describe(ctx: Ctx, e: AuditView) -> str:
        """What a sign-in event was, in the person's words."""
        _ = ctx._
        ok = e.result in ("ok", "accepted")
        if e.action in ("portal.sign_in", "primary"):
            return _("Password accepted") if ok else _("Wrong password")
        if e.action == "push.answer":
            return _("Approved on the phone") if ok else _("Not approved on the phone")
        if e.action == "fraud.report":
            return _("Reported as not you")
        if ok:
            return _("Signed in")
        if e.reason == "pending":
            return _("Push sent to the phone")
        return refusal(ctx, e.reason)

    def kind_names(ctx: Ctx) -> dict[str, str]:
        _ = ctx._
        return {
            "totp": _("Authenticator app"),
            "hotp": _("Hardware token"),
            "backup-codes": _("Backup codes"),
            "push": _("Mobile app"),
            "passkey": _("Passkey"),
            "access-code": _("Temporary access code"),
        }

    def method_name(ctx: Ctx, m: MethodView, names: dict[str, str]) -> str:
        """A method's name on the page: its label, unless the node gave it one of its own
        (in English), which is said in the person's language."""
        label = m.label.strip()
        if m.kind == "backup-codes" and label in ("", "backup codes"):
            return names[m.kind]
        if m.kind == "access-code" and label in ("", "temporary access code"):
            return names[m.kind]
        if m.kind == "push" and label in ("", "phone"):
            return names[m.kind]
        if m.kind in ("hotp", "totp") and label.startswith("token "):  # from the inventory
            return ctx._("Hardware token %(serial)s") % {"serial": label.removeprefix("token ")}
        return label or names.get(m.kind, m.kind)

    def routes() -> list[Any]:
        return [
            Route("/", page(home, public=True)),
            Route("/sign-in", page(sign_in, public=True), methods=["GET", "POST"]),
            Route("/second-factor", page(second_factor, public=True), methods=["GET", "POST"]),
            Route("/push", page(push_start, public=True), methods=["POST"]),
            Route("/push", page(push_page, public=True), methods=["GET"]),
            Route("/push/wait", page(push_wait, public=True), methods=["POST"]),
            Route("/confirm", page(confirm), methods=["GET", "POST"]),
            Route("/methods", page(methods)),
            Route("/methods/{method_id}/remove", page(remove_method), methods=["POST"]),
            Route("/methods/{method_id}/default", page(make_default), methods=["POST"]),
            Route("/app", page(app_start), methods=["POST"]),
            Route("/app", page(app_page), methods=["GET"]),
            Route("/app/confirm", page(app_confirm), methods=["POST"]),
            Route("/token", page(token_page), methods=["GET"]),
            Route("/token", page(token_claim), methods=["POST"]),
            Route("/passkey", page(passkey_sign_in, public=True), methods=["POST"]),
            Route("/passkeys/new", page(passkey_new), methods=["POST"]),
            Route("/passkeys", page(passkey_page), methods=["GET"]),
            Route("/passkeys", page(passkey_save), methods=["POST"]),
            Route("/mobile-app", page(mobile_app), methods=["POST"]),
            Route("/mobile-app", page(mobile_app_page), methods=["GET"]),
            Route("/mobile-app/status", page(mobile_app_status)),
            Route("/backup-codes", page(backup_codes), methods=["GET", "POST"]),
            Route("/sign-ins", page(sign_ins)),
            Route("/profile", page(profile), methods=["GET", "POST"]),
            Route("/bypass", page(bypass), methods=["POST"]),
            Route("/sign-out", page(sign_out, public=True, ends_only=True), methods=["POST"]),
            Route("/sign-out-everywhere", page(sign_out_everywhere), methods=["POST"]),
            Route("/language", page(choose_language, public=True), methods=["POST"]),
            Route("/static/{name:path}", static),
            Route("/healthz", healthz),
        ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if revocations is not None:
            revocations.start()
        try:
            yield
        finally:
            if revocations is not None:
                await revocations.stop()
            await sdk.aclose()

    inner = routes()
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
                [Middleware(ForwardAuthGate, cfg=fa, path=cfg.prefix + "/auth", view=revocations)]
                if fa is not None and revocations is not None
                else []
            ),
            Middleware(SecurityHeaders, secure=secure, csp=csp),
        ],
    )
    app.state.sessions = sessions
    return app


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


class SecurityHeaders:
    """Headers every answer carries: CSP, no framing, no sniffing, no referrer to other sites;
    HSTS over TLS."""

    def __init__(self, app: ASGIApp, secure: Callable[[Request], bool], csp: str = CSP) -> None:
        self.app = app
        self.secure = secure
        self.csp = csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = self.secure(Request(scope))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if tls:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
