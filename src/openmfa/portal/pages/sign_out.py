"""Signing out: of this browser (and of every protected site it holds a forward-auth cookie
for), or of every session of the person, wherever it was made."""

from __future__ import annotations

import logging
import time

from starlette.responses import Response

from ...errors import Conflict, NotFound, OpenMfaError
from ..runner import Ctx
from ..sessions import MAX_IDS

log = logging.getLogger("openmfa.portal")


async def sign_out(ctx: Ctx) -> Response:
    """This session ends on every host, and so does every forward-auth cookie it gave
    (re-authentications included) and the one this browser holds — even when this portal's
    own session had already ended (idle) while the cookie lived on."""
    s, fa, cookies, sdk = ctx.session, ctx.portal.fa, ctx.portal.fa_cookies, ctx.sdk
    ended: dict[str, list[str]] = {}
    if s.user and s.session_ids:
        ended[s.user] = list(s.session_ids)
    held = ctx.request.cookies.get(fa.cookie_name, "") if fa is not None else ""
    bearer = cookies.check(held.encode(), time.time()) if cookies and held else None
    if bearer is not None and bearer.session:
        ended.setdefault(bearer.user, []).append(bearer.session)
    try:
        if s.signed_in:
            await sdk.portal_sign_out(s.token)
        for user, ids in ended.items():
            await sdk.portal_end_sessions(user, list(dict.fromkeys(ids))[:MAX_IDS])
    except OpenMfaError as exc:  # ended already, no node, an older node: this host's
        log.warning("sign-out not recorded at the node: %s", exc)  # session ends here
    ctx.portal.sessions.drop(ctx.session)
    fresh = ctx.portal.sessions.new()
    fresh.notice = "signed-out"
    ctx.session = fresh
    resp = ctx.redirect("/sign-in")
    if fa is not None:  # signed out of the protected sites too
        resp.delete_cookie(fa.cookie_name, domain=fa.cookie_domain, path="/")
    return resp


async def sign_out_everywhere(ctx: Ctx) -> Response:
    """End every session of this person: the node voids every session token of theirs
    (other portals, other browsers), and this portal forgets its own at once."""
    notice = "signed-out-everywhere"
    try:
        await ctx.sdk.portal_sign_out_everywhere(ctx.session.token)
    except (Conflict, NotFound):  # a node not yet upgraded: this portal's sessions only
        notice = "signed-out-here"
    ctx.portal.sessions.drop_user(ctx.session.user)
    fresh = ctx.portal.sessions.new()
    fresh.notice = notice
    ctx.session = fresh
    return ctx.redirect("/sign-in")
