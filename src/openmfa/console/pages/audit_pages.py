"""The audit: a page filtered by user and result (the node pages it by id), its CSV export
streamed page by page, and a user's recent sign-ins."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from ...sdk.calls import Requests
from ...sdk.models import AuditView
from ..runner import Ctx, PageError
from .users_common import NAME_RE

PAGE = 50
BATCH = 1000
MAX_BATCHES = 50
"""At most this many batches of the audit are read for a user's recent sign-ins or an export."""
RESULTS = ("", "ok", "accepted", "rejected", "pending", "error")
SIGN_INS = ("authenticate", "primary", "portal.sign_in", "push.answer", "console.sign_in")
SINCE = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "all": 0.0}


async def _events(
    ctx: Ctx, *, user: str | None = None, since: float | None = None
) -> AsyncIterator[AuditView]:
    after = 0
    for _ in range(MAX_BATCHES):
        page = await ctx.op(Requests.audit(user=user, since=since, limit=BATCH, after_id=after))
        for e in page.events:
            yield e
        if page.next_after_id is None:
            return
        after = page.next_after_id


async def newest(ctx: Ctx, user: str, count: int) -> list[AuditView]:
    """``user``'s last ``count`` sign-ins of the last 30 days, newest first."""
    found: list[AuditView] = []
    async for e in _events(ctx, user=user, since=time.time() - 30 * 86400):
        if e.action in SIGN_INS:
            found = [*found[-(count - 1) :], e] if count > 1 else [e]
    return list(reversed(found))


def _filters(ctx: Ctx) -> tuple[str, str, str]:
    user, result, since = ctx.query("user", 64), ctx.query("result", 16), ctx.query("since", 8)
    if not NAME_RE.fullmatch(user) or result not in RESULTS or (since and since not in SINCE):
        raise PageError(ctx._("That filter could not be read."))
    return user, result, since or "24h"


def _since(since: str) -> float | None:
    return time.time() - SINCE[since] if SINCE[since] else None


async def audit(ctx: Ctx) -> Response:
    user, result, since = _filters(ctx)
    after_text = ctx.query("after", 20)
    after = int(after_text) if after_text.isdigit() else 0
    page = await ctx.op(
        Requests.audit(user=user or None, since=_since(since), limit=PAGE, after_id=after)
    )
    events = [e for e in page.events if not result or e.result == result]
    return ctx.render(
        "audit.html",
        events=events,
        user=user,
        result=result,
        since=since,
        results=RESULTS,
        spans=list(SINCE),
        next_after=page.next_after_id or "",
    )


async def audit_csv(ctx: Ctx) -> Response:
    """Every matching event as CSV, read from the node a batch at a time as it is sent."""
    user, result, since = _filters(ctx)
    first = await ctx.op(Requests.audit(user=user or None, since=_since(since), limit=1))
    del first  # asked once before the answer starts: a refusal is still a page, not a cut stream

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(["id", "at", "action", "user", "client", "result", "reason", "detail"])
        async for e in _events(ctx, user=user or None, since=_since(since)):
            if result and e.result != result:
                continue
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
            out.writerow([e.id, at, e.action, e.user, e.client, e.result, e.reason, e.detail])
            if buf.tell() > 16384:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    name = f"openmfa-audit-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
