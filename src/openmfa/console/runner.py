"""The console's page runner: its state (:class:`Console`), the operator's session, and the one
wrapper (:func:`page`) that turns a view into an endpoint.

``page`` owns the rules every page shares: the session (made on a first visit, named by a
cookie signed with the session key; ``__Host-`` and Secure over TLS), the CSRF token and Origin
of every form post, the redirect of a signed-out operator to the sign-in page, the recent
sign-in an action needs (``recent``: older than ``recent_minutes``, the operator signs in again
first), and what the node's refusals mean to the operator — a sentence in their language,
never a stack trace nor a 5xx for a refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jinja2
from babel.support import NullTranslations
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import Forbidden, NotFound, OpenMfaError, Unauthorized, Unavailable
from ..portal.i18n import NAMES, negotiate
from ..portal.limits import read_form_body
from ..portal.runner import same_origin
from ..portal.sessions import Attempts
from ..sdk.async_client import AsyncSdkClient
from ..sdk.call import Call
from ..sdk.calls_console import as_operator
from ..sdk.models import TOKEN_FILE_MAX
from .config import ConsoleConfig

log = logging.getLogger("openmfa.console")
T = TypeVar("T")
LANG_COOKIE = "openmfa-console-lang"
MAX_SESSIONS = 10_000


class PageError(Exception):
    """Shown on the page that was asked for, with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    user: str = ""
    ticket: str = ""
    """After the password: the node's ticket for the second factor."""
    kinds: list[str] = field(default_factory=list)
    codes: bool = False
    push_id: str = ""
    push_number: str = ""
    passkey_challenge: str = ""
    token: str = ""
    """After the second factor: the node's operator token."""
    token_expires: float = 0.0
    signed_in_at: float = 0.0
    next_page: str = ""
    notice: str = ""
    shown_once: str = ""
    """A temporary access code, shown on the next page only."""
    shown_key: str = ""
    """A new API key's token, shown on the next API keys page only."""

    @property
    def signed_in(self) -> bool:
        return bool(self.token)


class Sessions:
    """Operators' sessions in this process's memory: idle and absolute timeouts, and the node's
    token's own end."""

    def __init__(self, idle: float, absolute: float) -> None:
        self.idle, self.absolute = idle, absolute
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self) -> Session:
        now = time.time()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return s

    def get(self, sid: str, *, touch: bool = True) -> Session | None:
        """The live session ``sid``; ``touch``: a request of the operator's (a page renewing
        itself is none: it does not keep the session from its idle end)."""
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = time.time()
        ended = now - s.seen > self.idle or now - s.created > self.absolute
        if ended or (s.token and now >= s.token_expires):
            self.drop(s)
            return None
        if touch:
            s.seen = now
        return s

    def renew(self, s: Session) -> Session:
        """A new id and CSRF token for ``s`` (at each sign-in step: no session fixation)."""
        self._by_id.pop(s.id, None)
        s.id, s.csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        s.created = s.seen = time.time()
        self._by_id[s.id] = s
        return s

    def drop(self, s: Session) -> None:
        self._by_id.pop(s.id, None)


@dataclass
class Console:
    cfg: ConsoleConfig
    sdk: AsyncSdkClient
    sessions: Sessions
    attempts: Attempts
    envs: dict[str, tuple[jinja2.Environment, NullTranslations]]
    key: bytes

    def secure(self, request: Request) -> bool:
        if self.cfg.secure != "auto":
            return self.cfg.secure == "always"
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "")
        return peer in self.cfg.trusted_proxies and proto == "https"

    def address(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-for", "")
        if peer in self.cfg.trusted_proxies and forwarded:
            return forwarded.split(",")[-1].strip()
        return peer

    def origin(self, request: Request) -> str:
        """The page's origin as the browser sees it (what a passkey is bound to)."""
        scheme = "https" if self.secure(request) else request.url.scheme
        return f"{scheme}://{request.headers.get('host', '')}"

    def cookie_name(self, request: Request) -> str:
        return "__Host-openmfa-console" if self.secure(request) else "openmfa-console"

    def sign(self, sid: str) -> str:
        return sid + "." + hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()[:43]

    def unsign(self, value: str) -> str:
        sid, _, _ = value.partition(".")
        return sid if sid and hmac.compare_digest(self.sign(sid), value) else ""

    def language(self, request: Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE, "")
        if chosen in self.cfg.languages:
            return chosen
        return negotiate(request.headers.get("accept-language", ""), self.cfg.languages)


@dataclass
class Ctx:
    console: Console
    request: Request
    session: Session
    lang: str
    env: jinja2.Environment
    translations: NullTranslations
    base: str
    form: FormData | None = None

    @property
    def sdk(self) -> AsyncSdkClient:
        return self.console.sdk

    def _(self, message: str) -> str:
        return self.translations.gettext(message)

    def field(self, name: str, limit: int = 256) -> str:
        value = self.form.get(name, "") if self.form is not None else ""
        if not isinstance(value, str):
            raise PageError(self._("That form field must be text."))
        return value.strip()[:limit]

    def query(self, name: str, limit: int = 128) -> str:
        return self.request.query_params.get(name, "").strip()[:limit]

    @property
    def where(self) -> dict[str, str]:
        return {
            "address": self.console.address(self.request)[:64],
            "agent": self.request.headers.get("user-agent", "")[:512],
        }

    async def op(self, call: Call[T]) -> T:
        """``call`` asked as the signed-in operator (the node decides it by their role)."""
        return await self.sdk.send(as_operator(call, self.session.token))

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.base + path, status_code=303)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        notice, self.session.notice = self.session.notice, ""
        html = self.env.get_template(template).render(
            base=self.base,
            csrf=self.session.csrf,
            session=self.session,
            lang=self.lang,
            languages=[(code, NAMES[code]) for code in self.console.cfg.languages],
            notice=notice,
            request_path=self.request.url.path.removeprefix(self.base),
            **values,
        )
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")

    def render_text(self, template: str, **values: Any) -> str:
        """A template's text alone (a file to download: a chart)."""
        return self.env.get_template(template).render(base=self.base, lang=self.lang, **values)

    def limited(self) -> None:
        if not self.console.attempts.allow(self.console.address(self.request)):
            raise PageError(
                self._("Too many attempts from your address. Wait a minute, then try again."), 429
            )


UPLOAD_LIMIT = TOKEN_FILE_MAX + 65536
"""A form with a file (a token file, and the form's other fields)."""
RENEW_HEADER = "x-console-renew"
"""Sent by the console's script when a page renews itself (not the operator's activity)."""
View = Callable[[Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(
    console: Console,
    view: View,
    *,
    public: bool = False,
    recent: bool = False,
    upload: bool = False,
) -> Endpoint:
    """A page: its session, language, CSRF and Origin checks, and the node's refusals as
    sentences. ``public``: also for a signed-out browser; ``recent``: an action that needs a
    sign-in at most ``recent_minutes`` old; ``upload``: its form may carry one file of up to
    ``UPLOAD_LIMIT`` bytes."""

    async def endpoint(request: Request) -> Response:
        lang = console.language(request)
        env, translations = console.envs[lang]
        name = console.cookie_name(request)
        sent = request.cookies.get(name, "")
        touch = request.headers.get(RENEW_HEADER) != "1"  # a page renewing itself: no activity
        s = console.sessions.get(console.unsign(sent), touch=touch) if sent else None
        fresh = s is None
        if s is None:
            s = console.sessions.new()
            if sent:
                s.notice = "ended"
        ctx = Ctx(console, request, s, lang, env, translations, request.scope.get("root_path", ""))
        if upload and not s.signed_in:  # no file is read for someone not signed in
            return finish(console, request, ctx.redirect("/sign-in"), s, name)
        try:
            return finish(console, request, await answer(ctx, fresh), ctx.session, name)
        finally:
            if ctx.form is not None:
                await ctx.form.close()  # an uploaded file's spool, whatever the answer

    async def answer(ctx: Ctx, fresh: bool) -> Response:
        s = ctx.session
        if ctx.request.method == "POST":
            refused = await _take_form(ctx, fresh, upload)
            if refused is not None:
                return refused
        if not public and not s.signed_in:
            return ctx.redirect("/sign-in")
        if recent and time.time() - s.signed_in_at > console.cfg.recent_seconds:
            s.notice = "reauth"
            back = ctx.field("back") if ctx.form is not None else ""
            s.next_page = back if back.startswith("/") and not back.startswith("//") else "/"
            return ctx.redirect("/sign-in")
        try:
            return await view(ctx)
        except Exception as e:
            return failed(ctx, e)

    endpoint.__name__ = view.__name__
    return endpoint


async def _take_form(ctx: Ctx, fresh: bool, upload: bool = False) -> Response | None:
    wrong = (
        await read_form_body(ctx.request, UPLOAD_LIMIT)
        if upload
        else await read_form_body(ctx.request)
    )
    if wrong:
        status = 413 if wrong == "large" else 400
        return ctx.render("error.html", status, message=ctx._("That request could not be read."))
    try:
        form: FormData | None = await ctx.request.form(
            max_files=1 if upload else 0, max_fields=50, max_part_size=UPLOAD_LIMIT
        )
    except Exception:  # a malformed body is the sender's mistake: no token in it
        form = None
    sent = form.get("csrf") if form is not None else None
    if (
        fresh
        or not same_origin(ctx.request)
        or not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), ctx.session.csrf.encode())
    ):
        log.warning("refused a form post without this console's CSRF token")
        return ctx.render(
            "error.html",
            403,
            message=ctx._(
                "This form had expired or did not come from this console. "
                "Go back, reload the page and try again."
            ),
        )
    ctx.form = form
    return None


def failed(ctx: Ctx, e: Exception) -> Response:
    """What a view's exception means to the operator (never a stack trace)."""
    s = ctx.session
    if isinstance(e, Unauthorized):  # the operator token ended (a role taken away, a lock)
        ctx.console.sessions.drop(s)
        return ctx.redirect("/sign-in")
    if isinstance(e, PageError):
        return ctx.render("error.html", e.status, message=e.message)
    if isinstance(e, Forbidden):
        log.info("the node refused an operator's call: %s", e)
        sentence = ctx._(
            "The server refused this: your role does not allow it. "
            "Ask an operator whose role allows it."
        )
        return ctx.render("error.html", 403, message=sentence, detail=str(e))
    if isinstance(e, NotFound):
        return ctx.render("error.html", 404, message=ctx._("There is no such user or device."))
    if isinstance(e, Unavailable):
        return ctx.render(
            "error.html",
            503,
            message=ctx._("The servers cannot be reached just now. Try again in a minute."),
        )
    if isinstance(e, OpenMfaError):
        status = e.http_status if e.http_status < 500 else 502
        sentence = ctx._("The server refused this request.")
        return ctx.render("error.html", status, message=sentence, detail=str(e))
    log.exception("a console page failed", exc_info=e)
    return ctx.render(
        "error.html", 500, message=ctx._("Something went wrong on our side. Try again.")
    )


def finish(console: Console, request: Request, resp: Response, s: Session, name: str) -> Response:
    alive = console.sessions.get(s.id, touch=False) is s
    if alive:
        resp.set_cookie(
            name,
            console.sign(s.id),
            path="/",
            httponly=True,
            samesite="strict",
            secure=console.secure(request),
        )
    else:
        resp.delete_cookie(name, path="/")
    resp.headers["Cache-Control"] = "no-store"
    return resp
