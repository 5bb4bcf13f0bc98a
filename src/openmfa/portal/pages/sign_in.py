"""Signing in: the user name and password, then a second factor (a code or a passkey; a
push is :mod:`.push`), and re-authentication before a change of sign-in methods. A sign-in
that is to go back to a site protected by forward-auth ends with that site's cookie."""

from __future__ import annotations

import time

from starlette.responses import RedirectResponse, Response

from ...errors import InvalidInput
from ...sdk.models import MethodName, PortalStep
from ..forward_auth import in_domain
from ..runner import FORM_AGAIN, Ctx, PageError
from ..sentences import kind_names, method_name, refusal
from ..sessions import MAX_IDS, MAX_SESSIONS, Session
from . import remembered
from .methods import finish_removal

ENDED = frozenset(["locked", "disabled", "unknown_user"])
"""Second-factor refusals that end the sign-in: the person starts over at the sign-in page."""


async def home(ctx: Ctx) -> Response:
    return ctx.redirect("/methods" if ctx.session.signed_in else "/sign-in")


async def sign_in(ctx: Ctx) -> Response:
    s, fa = ctx.session, ctx.portal.fa
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
    ctx.limited()
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
        step = await ctx.sdk.portal_sign_in(
            user,
            password,
            purpose=purpose(s),
            remembered=remembered.token_to_send(ctx),
            **ctx.where,
        )
    except InvalidInput:
        step = PortalStep(accepted=False, reason="wrong_password")
    if not step.accepted:
        return ctx.render(
            "sign_in.html", FORM_AGAIN, reauth=False, user=user, error=refusal(ctx, step.reason)
        )
    ctx.portal.sessions.renew(s)
    s.user, s.ticket, s.reauth, s.prefer = user, step.ticket, False, step.prefer
    remember_kinds(ctx, step)
    remembered.offered(ctx, step)
    if step.token and step.reason in ("skipped", "remembered"):  # a policy rule: no second
        # factor from here, or this browser is remembered for it
        return await signed_in(ctx, step)
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
    ctx.limited()
    password = ctx.field("password", 128)
    step = (
        await ctx.sdk.portal_sign_in(s.user, password, purpose=reauth_purpose(s), **ctx.where)
        if password
        else None
    )
    if step is None or not step.accepted:
        reason = step.reason if step is not None else "wrong_password"
        return ctx.render(
            "sign_in.html", FORM_AGAIN, reauth=True, user=s.user, error=refusal(ctx, reason)
        )
    ctx.portal.sessions.renew(s)
    s.ticket, s.reauth, s.prefer = step.ticket, True, step.prefer
    remember_kinds(ctx, step)
    remembered.offered(ctx, step)
    if step.token and step.reason == "skipped":  # a policy rule: no second factor from here
        return await signed_in(ctx, step)
    return ctx.redirect("/second-factor")


def pin_of(ctx: Ctx) -> str:
    """The PIN typed on the second step ("" where none is asked, or none was typed: the node
    then refuses ``wrong_pin``); not digits: none (the node's form)."""
    if not ctx.session.pin:
        return ""
    pin = ctx.field("pin", 12).strip()
    return pin if pin.isascii() and pin.isdigit() else ""


def reauth_purpose(s: Session) -> str:
    """What a re-authentication is for: an application waiting for it, a site behind
    forward-auth whose rule the person's sign-in did not satisfy (``back_to_site``), else the
    portal's own changes (``portal-change``: its rule, never its skip) — a site's rule never
    stands in for the portal's otherwise."""
    if s.oidc_request and s.oidc_app:
        return f"oidc {s.oidc_app}"
    return "forward-auth" if s.site_step_up and s.return_to else "portal-change"


def purpose(s: Session) -> str:
    """What this sign-in is for, as the node's policy rules name it (``FOR_HEADER``): an
    application waiting for it, a site behind forward-auth, else the portal itself."""
    if s.oidc_request and s.oidc_app:
        return f"oidc {s.oidc_app}"
    return "forward-auth" if s.return_to else ""


def remember_kinds(ctx: Ctx, step: PortalStep) -> None:
    """Keeps what the node said the person can use, for the second step's page."""
    ctx.session.method_names = [(m.kind, m.label) for m in step.methods or []]
    ctx.session.codes = step.codes
    ctx.session.pin = step.pin
    told = ctx.portal.told_kinds
    if step.ticket:
        told[step.ticket] = None if step.kinds is None else frozenset(step.kinds)
        while len(told) > MAX_SESSIONS:
            told.popitem(last=False)


def can_push(ctx: Ctx, s: Session) -> bool:
    """The person has the mobile app (or the node did not say: offered, as before)."""
    kinds = ctx.portal.told_kinds.get(s.ticket)
    return kinds is None or "push" in kinds


async def second_factor(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/methods" if s.signed_in else "/sign-in")
    if ctx.request.method == "GET":
        return await second_factor_page(ctx, "")
    ctx.limited()
    code = ctx.field("code", 64).replace(" ", "").replace("-", "")
    if not code:
        return await second_factor_page(ctx, ctx._("Type the code your app shows."))
    try:
        step = await ctx.sdk.portal_second_factor(
            s.ticket, code, remember=remembered.chosen(ctx), pin=pin_of(ctx), **ctx.where
        )
    except InvalidInput:
        step = PortalStep(accepted=False, reason="malformed")
    return await signed_in(ctx, step)


async def second_factor_page(ctx: Ctx, error: str, status: int = 200) -> Response:
    """The second step's page, the one place it is rendered: the code form, the push button,
    and a passkey when the person has one. When the node has ended this sign-in (the person
    is locked, disabled or unknown: no ticket any more), the sign-in page with ``error``
    instead: they start over."""
    s = ctx.session
    if not s.ticket:
        return ctx.render("sign_in.html", FORM_AGAIN, reauth=s.reauth, user=s.user, error=error)
    options = ""
    try:
        offer = await ctx.sdk.portal_passkey_options(s.ticket, ctx.portal.origin(ctx.request))
        options, s.passkey_challenge = offer.options, offer.challenge
    except InvalidInput:
        s.passkey_challenge = ""  # no passkey (or none for this origin): codes and push
    return ctx.render(
        "second_factor.html",
        status,
        error=error,
        passkey_options=options,
        prefer=s.prefer,
        push=can_push(ctx, s),
        codes=takes_codes(ctx, s),
        pin=s.pin,
        remember_minutes=s.remember_minutes,
        **names_by_form(ctx, s),
    )


CODE_KINDS = frozenset(["totp", "hotp", "backup-codes", "access-code"])
"""Methods the second step's code form takes a code of."""


def takes_codes(ctx: Ctx, s: Session) -> bool:
    """The code form is offered unless the node said no typed code gives the second factor
    here (a policy rule that allows only a passkey or a numbered push)."""
    return s.codes


def names_by_form(ctx: Ctx, s: Session) -> dict[str, list[str]]:
    """The names of the person's methods each form of the second step is for (the code
    form's, the push button's, the passkey's), so they see which one is asked for."""
    kinds = kind_names(ctx)
    named = [
        (k, method_name(ctx, MethodName(kind=k, label=label), kinds)) for k, label in s.method_names
    ]
    named.sort(key=lambda kn: kn[0] in ("backup-codes", "access-code"))  # emergencies last
    return {
        "code_names": [n for k, n in named if k in CODE_KINDS],
        "push_names": [n for k, n in named if k == "push"],
        "passkey_names": [n for k, n in named if k == "passkey"],
    }


async def passkey_sign_in(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/sign-in")
    ctx.limited()
    credential = ctx.field("credential", 16384)
    if not credential or not s.passkey_challenge:
        return await second_factor_page(
            ctx, ctx._("Passkeys need JavaScript in your browser. Type a code instead.")
        )
    try:
        step = await ctx.sdk.portal_passkey(
            s.ticket,
            s.passkey_challenge,
            credential,
            remember=remembered.chosen(ctx),
            **ctx.where,
        )
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
    ctx.portal.sessions.renew(s)
    s.token, s.token_expires, s.ticket, s.push_id = step.token, step.expires_at, "", ""
    s.signed_in_at = now
    if not s.reauth:
        s.created = now  # the absolute timeout counts from the sign-in
    was_reauth, s.reauth = s.reauth, False
    target, s.next_page = s.next_page or "/methods", ""
    if was_reauth and s.removing:
        await finish_removal(ctx)
    if s.return_to and (not was_reauth or s.site_step_up):
        s.site_step_up = False
        return remembered.keep(ctx, await back_to_site(ctx), step)
    return remembered.keep(ctx, ctx.redirect(target), step)


async def back_to_site(ctx: Ctx) -> Response:
    """Forward-auth: the cookie the proxies check, then back to the protected site — unless
    the person's sign-in was for something else and does not satisfy the sites' policy rule
    (the node says so, ``PortalMe.step_up``): then they confirm it is them under that rule
    first (``/confirm``, for ``forward-auth``), and come back here."""
    fa, cookies = ctx.portal.fa, ctx.portal.fa_cookies
    assert fa is not None and cookies is not None
    s = ctx.session
    address = ctx.where["address"]
    me = await ctx.sdk.portal_me(s.token, purpose="forward-auth", address=address)
    if me.step_up:
        s.site_step_up, s.notice = True, "site-step-up"
        return ctx.redirect("/confirm")
    target, s.return_to = s.return_to, ""
    if me.session_id and me.session_id not in s.session_ids:  # what a sign-out ends
        s.session_ids = [*s.session_ids, me.session_id][-MAX_IDS:]
    value = cookies.issue(
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
        secure=ctx.portal.secure(ctx.request),
    )
    return resp
