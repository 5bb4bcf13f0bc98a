"""Tokens: the inventory of hardware and software OATH tokens (never a seed), a page at a time
(the node pages it), all or only the free ones; a free token assigned to a person (a helpdesk
operator may: ``tokens:assign``), one removed from the inventory (an administrator's). Each
action is a form (CSRF), needs a recent sign-in of the operator, and is decided by the node by
the operator's role."""

from __future__ import annotations

import time

from starlette.responses import Response

from ...sdk.calls import Requests
from ..runner import Ctx, PageError
from .users_common import NAME_RE

PAGE = 25


def _serial(ctx: Ctx) -> str:
    serial = ctx.field("serial", 128)
    if not serial or not NAME_RE.fullmatch(serial):
        raise PageError(ctx._("Type the serial number of a token."))
    return serial


async def tokens(ctx: Ctx) -> Response:
    after, free = ctx.query("after", 128), ctx.query("free", 1) == "1"
    if not NAME_RE.fullmatch(after):
        raise PageError(ctx._("That search could not be read."))
    found = await ctx.op(Requests.list_tokens(unassigned=free, limit=PAGE, after=after))
    return ctx.render(
        "tokens.html",
        tokens=found.tokens,
        free=free,
        next_after=found.next_after or "",
        now=time.time(),
    )


async def assign(ctx: Ctx) -> Response:
    serial = _serial(ctx)
    user = ctx.field("user", 255)
    if not user or not NAME_RE.fullmatch(user):
        raise PageError(ctx._("Type the name of the user to give the token to."))
    await ctx.op(Requests.assign_token(serial, user))
    ctx.session.notice = "assigned"
    return ctx.redirect(f"/users/{user}")


async def remove(ctx: Ctx) -> Response:
    serial = _serial(ctx)
    await ctx.op(Requests.remove_token(serial))
    ctx.session.notice = "token-removed"
    return ctx.redirect("/tokens")
