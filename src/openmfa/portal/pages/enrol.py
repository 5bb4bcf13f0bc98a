"""Adding a sign-in method: an authenticator app (its QR code and secret, then a code it
shows), a passkey (the browser's WebAuthn ceremony), the mobile app (an activation QR code
and link, and its status for the page's script)."""

from __future__ import annotations

from urllib.parse import quote

import segno
from starlette.responses import JSONResponse, Response

from ...errors import InvalidInput
from ..runner import FORM_AGAIN, Ctx


async def app_start(ctx: Ctx) -> Response:
    s = ctx.session
    label = ctx.field("label", 64) or ctx._("Authenticator app")
    offer = await ctx.sdk.portal_totp_start(s.token, label)
    s.offer, s.offer_secret, s.offer_uri, s.offer_label = (
        offer.offer,
        offer.secret,
        offer.otpauth_uri,
        label,
    )
    return ctx.redirect("/app")


def _app_form(ctx: Ctx, status: int = 200, error: str = "") -> Response:
    """The offered secret, as a QR code and in groups of four, and the code form."""
    s = ctx.session
    return ctx.render(
        "app.html",
        status,
        qr=segno.make(s.offer_uri, error="m").png_data_uri(scale=5, border=4),
        secret=" ".join(s.offer_secret[i : i + 4] for i in range(0, len(s.offer_secret), 4)),
        label=s.offer_label,
        error=error,
    )


async def app_page(ctx: Ctx) -> Response:
    if not ctx.session.offer:
        return ctx.redirect("/methods")
    return _app_form(ctx)


async def app_confirm(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.offer:
        return ctx.redirect("/methods")
    code = ctx.field("code", 64).replace(" ", "")
    try:
        await ctx.sdk.portal_totp_confirm(s.token, s.offer, code, **ctx.where)
    except InvalidInput:
        return _app_form(
            ctx,
            FORM_AGAIN,
            ctx._(
                "That is not the code your app shows for this secret. Check that the "
                "phone's clock is right and type the code it shows now."
            ),
        )
    s.offer = s.offer_secret = s.offer_uri = ""  # the secret is never shown again
    s.notice = "app-added"
    return ctx.redirect("/methods")


async def passkey_new(ctx: Ctx) -> Response:
    s = ctx.session
    offer = await ctx.sdk.portal_passkey_register_options(s.token, ctx.portal.origin(ctx.request))
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
            await ctx.sdk.portal_passkey_register(
                s.token, s.passkey_challenge, credential, label, **ctx.where
            )
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
    me = await ctx.sdk.portal_me(s.token)
    code = await ctx.sdk.portal_activation(s.token, ctx.field("label", 64), **ctx.where)
    s.push_methods_before = sum(1 for m in me.methods if m.kind == "push")
    s.activation = {"code": code.code, "url": code.url, "qr": code.qr_text}
    return ctx.redirect("/mobile-app")


def app_link(url: str, code: str, qr_text: str) -> str:
    """The link that opens the mobile web app and activates it: what the node's QR code
    carries. A node of an older release carried an ``openmfa://`` link, which a phone's
    camera cannot open; the web app's link is made from the address and code then."""
    if qr_text.startswith(("https://", "http://")):
        return qr_text
    return f"{url.rstrip('/')}/app/#activate={quote(code, safe='')}"


async def mobile_app_page(ctx: Ctx) -> Response:
    a = ctx.session.activation
    if not a:
        return ctx.redirect("/methods")
    link = app_link(a["url"], a["code"], a["qr"])
    return ctx.render(
        "mobile_app.html",
        qr=segno.make(link, error="m").png_data_uri(scale=5, border=4),
        link=link,
        code=a["code"],
        url=a["url"],
    )


async def mobile_app_status(ctx: Ctx) -> Response:
    """Whether the app was activated (one more push method than before), for the page's
    script."""
    s = ctx.session
    me = await ctx.sdk.portal_me(s.token)
    done = bool(s.activation) and (
        sum(1 for m in me.methods if m.kind == "push") > s.push_methods_before
    )
    if done:
        s.activation = {}
        s.notice = "activated"
    return JSONResponse({"activated": done, "next": ctx.url("/methods")})
