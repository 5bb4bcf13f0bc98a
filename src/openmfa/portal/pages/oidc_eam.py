"""Microsoft Entra ID's external authentication method at the portal: Entra POSTs its request
(``response_type=id_token``, ``response_mode=form_post``, its signed ``id_token_hint``) to
``/oidc/authorize``; the node checks it and names the person (``/v1/oidc/eam/start``); the
person gives the second factor only — the portal's own step, code, push or passkey, on the
ticket the node gave, in a new portal session made for this request (never a remembered
one); then the node signs the answer (``/v1/oidc/eam/finish``) and a form POSTs it back to
Entra. The node's refusals go back to Entra the same way, as ``error`` and ``state``.

Cookies: Entra's POST comes from another site, so the browser sends none of this portal's
cookies (SameSite=Lax) — none is needed, the request starts a session of its own. Its answer
sets the new session's cookie (Lax: a browser takes it on a top-level navigation's answer)
and sends the browser to the second-factor page with a GET, which carries the cookie; every
step after that is this portal's own page. The POST is taken without a CSRF token (Entra's
form cannot carry one): it changes nothing for anyone but the person the signed hint names.
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from ...errors import InvalidInput, OAuthRefused, Unauthorized
from ...sdk.models import OidcEamStart
from ..runner import Ctx
from .oidc import Refused, checked_client, origin_of

FINISH = "/oidc/eam/finish"


def form_post(ctx: Ctx, action: str, fields: dict[str, str]) -> Response:
    """A page whose form POSTs ``fields`` to ``action`` by itself (``form_post.js``), with a
    Continue button for a browser without script (OAuth 2.0 Form Post Response Mode)."""
    ctx.session.form_to = ""
    resp = ctx.render(
        "form_post.html",
        action=action,
        fields=[(k, v) for k, v in fields.items() if v],
        error="error" in fields,
    )
    target = origin_of(action)
    if ctx.portal.csp and target:
        resp.headers["Content-Security-Policy"] = ctx.portal.csp.replace(
            "form-action 'self'", f"form-action 'self' {target}"
        )
    return resp


async def eam_start(ctx: Ctx, p: dict[str, str]) -> Response:
    """Entra's request: checked by the node, then the second-factor page."""
    client = await checked_client(ctx, p)  # an error page, never a POST elsewhere
    redirect_uri, state = p["redirect_uri"], p.get("state", "")
    try:
        if p.get("response_mode", "form_post") != "form_post":
            raise Refused("invalid_request", "response_mode must be form_post")
        if not p.get("id_token_hint"):
            raise Refused("invalid_request", "id_token_hint is required")
        try:
            ask = msgspec.convert(
                {
                    "client_id": client.client_id,
                    "redirect_uri": redirect_uri,
                    "id_token_hint": p["id_token_hint"],
                    "claims": p.get("claims", ""),
                    "nonce": p.get("nonce", ""),
                    "scope": p.get("scope", "openid"),
                },
                OidcEamStart,
            )
        except msgspec.ValidationError as e:
            raise Refused("invalid_request", str(e)) from None
        try:
            started = await ctx.sdk.oidc_eam_start(ask)
        except InvalidInput as e:
            raise Refused("invalid_request", str(e)) from None
        except OAuthRefused as e:
            raise Refused(e.code, str(e)) from None
    except Refused as r:
        fields = {"error": r.code, "error_description": r.description, "state": state}
        return form_post(ctx, redirect_uri, fields)
    # A sign-in of its own: whatever session this browser had is not looked at.
    s = ctx.session = ctx.portal.sessions.new()
    s.user, s.ticket, s.prefer = started.user, started.ticket, started.prefer
    s.remember_minutes = 0  # never for a sign-in Entra ID started (``node.remembered``)
    s.eam_request, s.eam_state, s.eam_redirect = started.request, state, redirect_uri
    s.next_page = FINISH
    told = ctx.portal.told_kinds
    told[started.ticket] = None if started.kinds is None else frozenset(started.kinds)
    return ctx.redirect("/second-factor")


async def eam_finish(ctx: Ctx) -> Response:
    """After the second factor: the node's answer, POSTed back to Entra."""
    s = ctx.session
    if not s.eam_request:
        return ctx.redirect("/")
    sealed, state, redirect_uri = s.eam_request, s.eam_state, s.eam_redirect
    s.eam_request = s.eam_state = s.eam_redirect = ""
    try:
        answer = await ctx.sdk.oidc_eam_finish(s.token, sealed)
        fields = {"id_token": answer.id_token, "state": state}
        redirect_uri = answer.redirect_uri
    except (OAuthRefused, InvalidInput, Unauthorized) as e:
        code = e.code if isinstance(e, OAuthRefused) else "access_denied"
        fields = {"error": code, "error_description": str(e), "state": state}
    # The session answered Entra ID; it is good for nothing else here.
    s.token, s.token_expires, s.user = "", 0.0, ""
    return form_post(ctx, redirect_uri, fields)
