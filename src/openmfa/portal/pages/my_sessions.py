"""Where I am signed in: the person's browsers (address, browser, first and last seen; this one
marked), "End" beside each other one, and "Sign out everywhere" below. Ending one ends its
portal session and the forward-auth cookie that carries its id on every host, within the
revocation view's bound (``node.portal_sessions``). The page runner told the node of this browser
as its sign-in ended (``seen``), so it is listed even if it only ever went to a protected
site."""

from __future__ import annotations

from starlette.responses import Response

from ...errors import NotFound
from ..runner import Ctx


async def sessions(ctx: Ctx) -> Response:
    found = await ctx.sdk.portal_sessions_and_remembered(ctx.session.token)
    kept = found.remembered  # the browsers that skip the second step (``pages.remembered``)
    if kept is None:  # a node that does not send them with the sessions: asked apart
        try:
            kept = await ctx.sdk.portal_remembered(ctx.session.token)
        except NotFound:  # a node of a release before remembered browsers
            kept = []
    return ctx.render("sessions.html", sessions=found.sessions, remembered=kept)


async def end_session(ctx: Ctx) -> Response:
    ref = str(ctx.request.path_params["ref"])[:64]
    try:
        await ctx.sdk.portal_end_session(ctx.session.token, ref)
        ctx.session.notice = "session-ended"
    except NotFound:  # ended already (another tab), or not theirs: the same answer
        ctx.session.notice = "session-gone"
    return ctx.redirect("/sessions")
