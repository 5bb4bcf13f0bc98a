"""Remembered browsers at the portal: the box on the second step, the cookie, and forgetting one
on "Where I am signed in" (the node owns the rules: ``node.remembered``).

- the box is shown only when the node offered it for this sign-in (``PortalStep.remember_minutes``:
  a policy rule allows it, the farm is at the data format that knows it, the sign-in is no
  Entra ID one); ticked, the second step asks the node to remember the browser, and the token
  it answers goes into a cookie (HttpOnly, SameSite=Lax, Secure over TLS, ``__Host-`` prefixed
  then) for as long as the rule allows;
- the cookie's token goes with the first step of a sign-in, never with a re-authentication
  before a change (that always asks the second factor), nor when an OpenID Connect application
  asks for a fresh sign-in (``prompt=login``, ``max_age``).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.responses import Response

from ...errors import NotFound
from ...sdk.models import PortalStep
from ..runner import Ctx


def token_to_send(ctx: Ctx) -> str:
    """The remember cookie's token for a first sign-in step ("" when none may be sent)."""
    s = ctx.session
    if s.oidc_request:
        asked = parse_qs(urlsplit(s.oidc_request).query)
        if "max_age" in asked or "login" in " ".join(asked.get("prompt", [])).split():
            return ""
    token = ctx.request.cookies.get(ctx.portal.remember_cookie(ctx.request), "")
    ok = 0 < len(token) <= 128 and all(c.isalnum() or c in "-_" for c in token)
    return token if ok else ""


def offered(ctx: Ctx, step: PortalStep) -> None:
    """Keeps what the first step said of remembering, for the second step's page."""
    s = ctx.session
    s.remember_minutes = 0 if s.reauth else step.remember_minutes
    s.remember = False


def chosen(ctx: Ctx) -> bool:
    """The second step's form says to remember this browser (where it was offered)."""
    s = ctx.session
    s.remember = bool(s.remember_minutes) and ctx.field("remember", 8) == "yes"
    return s.remember


def keep(ctx: Ctx, resp: Response, step: PortalStep) -> Response:
    """The remember cookie on ``resp`` when the node gave this browser a token."""
    if step.remember_token and step.remember_minutes > 0:
        resp.set_cookie(
            ctx.portal.remember_cookie(ctx.request),
            step.remember_token,
            max_age=step.remember_minutes * 60,
            path="/",
            httponly=True,
            samesite="lax",
            secure=ctx.portal.secure(ctx.request),
        )
    ctx.session.remember_minutes, ctx.session.remember = 0, False
    return resp


async def forget(ctx: Ctx) -> Response:
    """Forget one of the person's remembered browsers (POST /sessions/remembered/{ref})."""
    ref = str(ctx.request.path_params["ref"])[:64]
    try:
        await ctx.sdk.portal_forget_remembered(ctx.session.token, ref)
        ctx.session.notice = "remembered-forgotten"
    except NotFound:  # forgotten already (another tab), or not theirs: the same answer
        ctx.session.notice = "remembered-gone"
    return ctx.redirect("/sessions")
