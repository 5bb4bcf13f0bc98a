"""An operator signs in: user name and password, then a passkey, a numbered push (the number
shown here, typed on the phone) or, where the node allows it (a policy rule naming code kinds),
a code.
The node says which steps it offers (``PortalStep.kinds``, ``codes``); it alone decides."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from ...errors import InvalidInput
from ...sdk.calls_console import ConsoleRequests as R
from ...sdk.models import PortalStep
from ..runner import Ctx, PageError

PUSH_WAIT = 20
"""Seconds the push page's "Continue" waits for the phone's answer."""


def refused(ctx: Ctx, reason: str) -> str:
    """Why a sign-in step was refused, as a sentence in the operator's language."""
    _ = ctx._
    sentences = {
        "wrong_password": _("The user name or password is not right."),
        "unknown_user": _("The user name or password is not right."),
        "not_an_operator": _("This account has no role in the console. Ask an administrator."),
        "second_factor_required": _(
            "The console needs a second factor: a passkey or a push to the mobile app."
        ),
        "wrong_code": _("That code is not right. Type the code your app shows now."),
        "replay": _("That code was used already. Wait for the next one."),
        "locked": _("This account is locked after too many failed attempts. Try again later."),
        "disabled": _("This account is disabled."),
        "denied": _("The phone refused this sign-in. Sign in again to try once more."),
        "declined": _("The push was declined on the phone."),
        "expired": _("The push was not answered in time. Sign in again."),
        "method_not_allowed": _(
            "A code cannot sign you in to the console. Use the mobile app (push) instead."
        ),
        "push_unavailable": _("Push cannot be sent just now. Try again in a minute."),
        "push_limited": _("Too many pushes just now. Wait a little, then try again."),
        "push_blocked": _("Push is blocked for this account. Ask an administrator."),
        "wrong_passkey": _("The passkey was not accepted. Try again."),
    }
    return sentences.get(reason, _("The sign-in was refused.") + f" ({reason})")


async def home(ctx: Ctx) -> Response:
    return ctx.redirect("/dashboard" if ctx.session.signed_in else "/sign-in")


async def sign_in(ctx: Ctx) -> Response:
    s = ctx.session
    if ctx.request.method == "GET":
        return ctx.render("sign_in.html", user=s.user)
    ctx.limited()
    user, password = ctx.field("user", 64), ctx.field("password", 1024)
    if not user or not password:
        raise PageError(ctx._("Type your user name and password."))
    step = await ctx.sdk.send(R.console_sign_in(user, password, **ctx.where))
    if not step.accepted:
        return ctx.render("sign_in.html", user=user, error=refused(ctx, step.reason))
    ctx.console.sessions.renew(s)
    s.user, s.ticket = user, step.ticket
    s.kinds, s.codes = list(step.kinds or []), step.codes
    return ctx.redirect("/second-factor")


async def second_factor(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/sign-in")
    if ctx.request.method == "GET":
        return await second_page(ctx)
    ctx.limited()
    code = ctx.field("code", 16).replace(" ", "")
    step = await ctx.sdk.send(R.console_second_factor(s.ticket, code, **ctx.where))
    return await done(ctx, step)


async def second_page(ctx: Ctx, error: str = "") -> Response:
    """The second step: a passkey (when the operator has one for this origin), the push button
    (with the mobile app), the code box (where a rule allows codes)."""
    s = ctx.session
    options = ""
    s.passkey_challenge = ""
    if "passkey" in s.kinds:
        try:
            offer = await ctx.sdk.send(
                R.console_passkey_options(s.ticket, ctx.console.origin(ctx.request))
            )
            options, s.passkey_challenge = offer.options, offer.challenge
        except InvalidInput:  # none for this origin: the push or a code
            pass
    values: dict[str, Any] = {"push": "push" in s.kinds, "codes": s.codes}
    if error:
        values["error"] = error
    return ctx.render("second_factor.html", passkey_options=options, **values)


async def passkey(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/sign-in")
    ctx.limited()
    credential = ctx.field("credential", 16384)
    if not credential or not s.passkey_challenge:
        return await second_page(ctx, ctx._("Passkeys need JavaScript in your browser."))
    try:
        call = R.console_passkey(s.ticket, s.passkey_challenge, credential, **ctx.where)
        step = await ctx.sdk.send(call)
    except InvalidInput:
        step = PortalStep(accepted=False, reason="wrong_passkey")
    return await done(ctx, step)


async def push_start(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/sign-in")
    step = await ctx.sdk.send(R.console_push(s.ticket, **ctx.where))
    if step.pending is None:
        return await done(ctx, step)
    s.push_id, s.push_number = step.pending.id, step.pending.number
    return ctx.redirect("/push")


async def push_page(ctx: Ctx) -> Response:
    if not (ctx.session.ticket and ctx.session.push_id):
        return ctx.redirect("/sign-in")
    return ctx.render("push.html", number=ctx.session.push_number)


async def push_wait(ctx: Ctx) -> Response:
    s = ctx.session
    if not (s.ticket and s.push_id):
        return ctx.redirect("/sign-in")
    step = await ctx.sdk.send(R.console_push_collect(s.ticket, s.push_id, wait=PUSH_WAIT))
    if step.pending is not None or (not step.accepted and step.reason == "pending"):
        waiting = ctx._("The phone has not approved it yet. Approve it there, then continue.")
        return ctx.render("push.html", number=s.push_number, error=waiting)
    return await done(ctx, step)


async def done(ctx: Ctx, step: PortalStep) -> Response:
    """The last step's answer: signed in (a fresh session), or the refusal said."""
    s = ctx.session
    if not (step.accepted and step.token):
        s.push_id = s.push_number = ""
        again = ("wrong_code", "replay", "malformed", "wrong_pin", "wrong_passkey")
        if step.reason in again:
            return await second_page(ctx, refused(ctx, step.reason))
        s.ticket = ""
        return ctx.render("sign_in.html", user=s.user, error=refused(ctx, step.reason))
    ctx.console.sessions.renew(s)
    s.ticket = s.push_id = s.push_number = ""
    s.token, s.token_expires, s.signed_in_at = step.token, step.expires_at, time.time()
    following, s.next_page = s.next_page or "/dashboard", ""
    return ctx.redirect(following)


async def sign_out(ctx: Ctx) -> Response:
    ctx.console.sessions.drop(ctx.session)
    fresh = ctx.console.sessions.new()
    fresh.notice = "signed-out"
    ctx.session = fresh
    return ctx.redirect("/sign-in")


async def language(ctx: Ctx) -> Response:
    from ..runner import LANG_COOKIE

    lang = ctx.field("lang", 8)
    back = ctx.field("back", 200)
    resp = ctx.redirect(back if back.startswith("/") and not back.startswith("//") else "/")
    if lang in ctx.console.cfg.languages:
        resp.set_cookie(LANG_COOKIE, lang, path="/", samesite="strict", httponly=True)
    return resp
