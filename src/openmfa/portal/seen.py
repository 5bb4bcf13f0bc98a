"""Telling the node where a person is signed in: a signed-in browser's address and user agent,
reported at most once every ``REPORT_SECONDS`` per session (``node.portal_sessions``) — the
node learns "last seen" without a write per page."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.requests import Request

from ..errors import OpenMfaError
from .sessions import MAX_IDS, Session

if TYPE_CHECKING:
    from .runner import Portal

log = logging.getLogger("openmfa.portal")
REPORT_SECONDS = 60.0


async def report(portal: Portal, request: Request, s: Session) -> None:
    """Report ``s`` when it is due: a minute after the last report, or at once when its token
    changed (a re-authentication: a new node session to add to its row) or the person chose
    another language (the node sends their security notices in it). An error of the node
    is ignored here (the page's own call meets it; a minute later this asks again)."""
    now = time.monotonic()
    language = portal.language(request)
    if not s.signed_in or (
        now - s.reported_at < REPORT_SECONDS
        and s.reported == s.token
        and s.reported_language == language
    ):
        return
    s.reported_at, s.reported, s.reported_language = now, s.token, language
    agent = request.headers.get("user-agent", "")[:512]
    try:
        seen = await portal.sdk.portal_seen(
            s.token, portal.address(request)[:64], agent, s.session_ids[-MAX_IDS:], language
        )
    except OpenMfaError as exc:
        log.debug("the node did not take where this browser is: %s", exc.code)
        return
    if seen.session_id and seen.session_id not in s.session_ids:  # what a sign-out ends
        s.session_ids = [*s.session_ids, seen.session_id][-MAX_IDS:]
