"""Users: a search by the start of the name, group and state, a page at a time (the node pages
and narrows it), or by an exact email address (the node's keyed index of the sealed
addresses); and one user's page — methods, devices, lock, groups, role, recent sign-ins —
with the actions a helpdesk operator takes: unlock, a one-time bypass, a temporary access
code (shown once), revoke a device; and an administrator's: the user's role, an export of
everything held about the user (a JSON download) and erasing them (their name typed to
confirm). Each action is a form (CSRF), needs a recent sign-in of the operator, and is decided
by the node by the operator's role."""

from __future__ import annotations

import time
from urllib.parse import quote

import msgspec
from starlette.responses import Response

from ...sdk.calls import Requests
from ...sdk.calls_console import ConsoleRequests as R
from ...sdk.calls_privacy import PrivacyRequests
from ..runner import Ctx, PageError
from .audit_pages import newest
from .users_common import NAME_RE

PAGE = 25
STATES = ("", "locked", "disabled", "active")


def _name(ctx: Ctx) -> str:
    name = str(ctx.request.path_params["name"])
    if not name or not NAME_RE.fullmatch(name):
        raise PageError(ctx._("There is no such user or device."), 404)
    return name


async def users(ctx: Ctx) -> Response:
    q, after, email = ctx.query("q", 64), ctx.query("after", 64), ctx.query("email", 255)
    group, state = ctx.query("group", 128), ctx.query("state", 16)
    if not all(NAME_RE.fullmatch(x) for x in (q, after, email, group)) or state not in STATES:
        raise PageError(ctx._("That search could not be read."))
    if email:  # everyone with this address (sealed at rest: the node's keyed index)
        found = await ctx.op(Requests.find_users(email))
    else:
        found = await ctx.op(R.search_users(q, limit=PAGE, after=after, group=group, state=state))
    return ctx.render(
        "users.html",
        q=q,
        group=group,
        state=state,
        email=email,
        users=found.users,
        next_after=found.next_after or "",
        now=time.time(),
    )


async def user(ctx: Ctx) -> Response:
    name = _name(ctx)
    view = await ctx.op(Requests.get_user(name))
    methods = (await ctx.op(Requests.list_methods(name))).methods
    devices = (await ctx.op(Requests.list_devices(name))).devices
    sign_ins = await newest(ctx, name, 15)
    code, ctx.session.shown_once = ctx.session.shown_once, ""
    return ctx.render(
        "user.html",
        user=view,
        methods=methods,
        devices=devices,
        sign_ins=sign_ins,
        code=code,
        now=time.time(),
    )


async def unlock(ctx: Ctx) -> Response:
    name = _name(ctx)
    await ctx.op(Requests.unlock_user(name))
    ctx.session.notice = "unlocked"
    return ctx.redirect(f"/users/{name}")


async def bypass(ctx: Ctx) -> Response:
    name = _name(ctx)
    minutes = _number(ctx, "minutes", 1, 60)
    await ctx.op(Requests.bypass(name, minutes * 60))
    ctx.session.notice = "bypass"
    return ctx.redirect(f"/users/{name}")


async def access_code(ctx: Ctx) -> Response:
    name = _name(ctx)
    minutes = _number(ctx, "minutes", 1, 10080)
    issued = await ctx.op(R.access_code(name, minutes))
    ctx.session.shown_once = issued.code
    ctx.session.notice = "access-code"
    return ctx.redirect(f"/users/{name}")


async def revoke_device(ctx: Ctx) -> Response:
    name = _name(ctx)
    device = str(ctx.request.path_params["device"])[:64]
    await ctx.op(Requests.revoke_device(name, device))
    ctx.session.notice = "revoked"
    return ctx.redirect(f"/users/{name}")


async def role(ctx: Ctx) -> Response:
    name = _name(ctx)
    chosen = ctx.field("role", 16)
    if chosen not in ("admin", "helpdesk", "auditor", "none"):
        raise PageError(ctx._("Choose one of the roles offered."))
    await ctx.op(R.set_role(name, chosen))
    ctx.session.notice = "role"
    return ctx.redirect(f"/users/{name}")


async def export(ctx: Ctx) -> Response:
    """Everything held about the user, as the node exports it, for a subject access request."""
    name = _name(ctx)
    data = await ctx.op(PrivacyRequests.export_user(name))
    filename = quote(f"{name}-personal-data.json", safe="")
    return Response(
        msgspec.json.format(msgspec.json.encode(data)),
        media_type="application/json",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
            "Cache-Control": "no-store",
        },
    )


async def erase(ctx: Ctx) -> Response:
    """The user and all they hold, erased (their audit records kept under a pseudonym)."""
    name = _name(ctx)
    if ctx.field("confirm", 255) != name:
        raise PageError(ctx._("Type the user's name exactly to confirm erasing them."))
    await ctx.op(PrivacyRequests.erase_user(name))
    ctx.session.notice = "erased"
    return ctx.redirect("/users")


def _number(ctx: Ctx, field: str, lo: int, hi: int) -> int:
    text = ctx.field(field, 8)
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise PageError(
            ctx._("Type a number of minutes from %(lo)d to %(hi)d.") % {"lo": lo, "hi": hi}
        )
    return int(text)
