"""The person's account: their recent sign-ins, their details (the phone number kept for the
helpdesk, a one-time bypass where the node gives one), and the language of the pages."""

from __future__ import annotations

import time

from starlette.responses import RedirectResponse, Response

from ...errors import Forbidden, InvalidInput, Reauthenticate
from ..runner import FORM_AGAIN, LANG_COOKIE, Ctx
from ..sentences import browser_name, channel, describe

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
        "/sessions",
        "/confirm",
        "/passkeys",
        "/profile",
        "/password",
    ]
)
"""Where the language form may send the browser back to."""
BYPASS_ASKED_AGAIN = 600
"""Seconds before a portal that was refused a bypass offers one again."""


async def sign_ins(ctx: Ctx) -> Response:
    events = await ctx.sdk.portal_sign_ins(ctx.session.token, 50)
    return ctx.render(
        "sign_ins.html",
        events=[
            (
                e,
                describe(ctx, e),
                e.result in ("ok", "accepted"),
                channel(ctx, e),
                browser_name(ctx, e.browser, e.system),
            )
            for e in events
        ],
    )


async def profile(ctx: Ctx) -> Response:
    """My details: the phone number (kept for the helpdesk: no code is sent to it), and a
    one-time bypass where the node gives one."""
    s = ctx.session
    error = ""
    if ctx.request.method == "POST":
        try:
            await ctx.sdk.portal_set_phone(s.token, ctx.field("phone", 40))
            s.notice = "phone-saved"
            return ctx.redirect("/profile")
        except InvalidInput:
            error = ctx._(
                "That is not a phone number we can use. Type it with its country code, "
                "like +31 6 12345678."
            )
    return await profile_page(ctx, error)


async def profile_page(ctx: Ctx, error: str = "", bypass_error: str = "") -> Response:
    me = await ctx.sdk.portal_me(ctx.session.token)
    return ctx.render(
        "profile.html",
        FORM_AGAIN if error or bypass_error else 200,
        user=me.user,
        error=error,
        bypass_error=bypass_error,
        offer_bypass=bool(me.bypass_seconds)
        if me.bypass_seconds is not None
        else time.monotonic() >= ctx.portal.bypass_off_until,  # an older node: learned by asking
    )


async def bypass(ctx: Ctx) -> Response:
    try:
        granted = await ctx.sdk.portal_bypass(ctx.session.token, **ctx.where)
    except Forbidden as e:
        if isinstance(e, Reauthenticate):
            raise
        ctx.portal.bypass_off_until = time.monotonic() + BYPASS_ASKED_AGAIN
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


async def choose_language(ctx: Ctx) -> Response:
    """The language chosen on the page, kept in a cookie for a year; back to the page."""
    chosen = ctx.field("lang", 8)
    back = ctx.field("back", 200)
    back = back.removeprefix(ctx.base)
    if back not in GET_PAGES:
        back = "/"
    resp = RedirectResponse(ctx.url(back), status_code=303)
    if chosen in ctx.portal.cfg.languages:
        resp.set_cookie(
            LANG_COOKIE,
            chosen,
            max_age=365 * 86400,
            path="/",
            samesite="lax",
            secure=ctx.portal.secure(ctx.request),
            httponly=True,
        )
    return resp
