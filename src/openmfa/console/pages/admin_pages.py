"""API keys (every key; make one — its token shown once —, revoke one), a token file imported
into the inventory, and the farm (every node and every host beside them; the console's script
renews the tables every few seconds while the operator leaves that ticked). Keys and imports
are administrators' in person (no API key may: ``node.roles.ADMIN_ONLY``); the node refuses
anyone else 403 whatever the page shows. Every action needs a recent sign-in."""

from __future__ import annotations

import re

from starlette.datastructures import UploadFile
from starlette.responses import Response

from ...sdk.calls_console import ConsoleRequests
from ...sdk.models import KEY_DAYS_MAX, KEY_NAME_PATTERN, TOKEN_FILE_MAX
from ..runner import Ctx, PageError

KEY_NAME_RE = re.compile(KEY_NAME_PATTERN)
SCOPES = ("admin", "portal", "adapter", "mobile", "console")
REFRESH_SECONDS = 5


async def keys(ctx: Ctx) -> Response:
    found = await ctx.op(ConsoleRequests.api_keys())
    made, ctx.session.shown_key = ctx.session.shown_key, ""
    return ctx.render("keys.html", keys=found.keys, scopes=SCOPES, made=made)


async def key_create(ctx: Ctx) -> Response:
    name, scope, days = ctx.field("name", 64), ctx.field("scope", 16), ctx.field("days", 8)
    if not KEY_NAME_RE.fullmatch(name):
        raise PageError(ctx._("A key's name is letters, digits, dots, dashes and underscores."))
    if scope not in SCOPES:
        raise PageError(ctx._("Choose the key's scope."))
    if days and not (days.isdigit() and 1 <= int(days) <= KEY_DAYS_MAX):
        raise PageError(ctx._("A key lasts 1 to 3650 days, or until it is revoked."))
    made = await ctx.op(
        ConsoleRequests.create_api_key(name, scope, expires_days=float(days) if days else None)
    )
    ctx.session.shown_key = made.token  # shown on the next page, once, then forgotten
    return ctx.redirect("/keys")


async def key_revoke(ctx: Ctx) -> Response:
    name = ctx.field("name", 64)
    if not KEY_NAME_RE.fullmatch(name):
        raise PageError(ctx._("A key's name is letters, digits, dots, dashes and underscores."))
    await ctx.op(ConsoleRequests.revoke_api_key(name))
    ctx.session.notice = "key-revoked"
    return ctx.redirect("/keys")


async def token_import(ctx: Ctx) -> Response:
    sent = ctx.form.get("file") if ctx.form is not None else None
    if not isinstance(sent, UploadFile) or not sent.filename:
        raise PageError(ctx._("Choose a token file (PSKC or CSV) to import."))
    raw = await sent.read(TOKEN_FILE_MAX + 1)
    if not raw or len(raw) > TOKEN_FILE_MAX:
        raise PageError(ctx._("The file is empty or larger than 8 MiB."))
    by_user = ctx.field("assign", 8) == "user"
    report = await ctx.op(
        ConsoleRequests.import_tokens(
            raw,
            file_name=sent.filename[:255],
            password=ctx.field("password", 1024),
            assign_by="user" if by_user else "serial",
        )
    )
    return ctx.render("imported.html", r=report, name=sent.filename[:255])


async def farm(ctx: Ctx) -> Response:
    f = await ctx.op(ConsoleRequests.farm_status())
    return ctx.render("farm.html", f=f, refresh=REFRESH_SECONDS)
