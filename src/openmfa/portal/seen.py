"""Telling the node where a person is signed in: a signed-in browser's address and user agent,
reported at most once every ``REPORT_SECONDS`` per session (``node.portal_sessions``) — the
node learns "last seen" without a write per page. Forward-auth does the same for the cookies
it lets through (``CookieReports``): at most once a minute per session, noted in memory on
the check's path and sent in one batch in the background."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
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


class CookieReports:
    """The sessions whose forward-auth cookies this host let through, for the node's "last
    seen". ``saw`` is on the check's path: two dictionary looks, no I/O; ``send`` sends what is
    due in the background (the revocation view's loop calls it after each poll), in batches."""

    BATCH = 500

    def __init__(
        self,
        post: Callable[[list[tuple[str, str]]], Awaitable[None]],
        every: float = REPORT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.post = post
        self.every = every
        self.clock = clock
        self._last: dict[str, float] = {}
        """Session id -> when (``clock``) it was last noted."""
        self._due: dict[str, str] = {}
        """Session id -> its person: to send."""

    def saw(self, user: str, session: str) -> None:
        if not session:
            return
        now = self.clock()
        if now - self._last.get(session, float("-inf")) < self.every:
            return
        self._last[session] = now
        self._due[session] = user

    async def send(self) -> None:
        """Send what is due (a node's error drops this round's: a minute later they come
        again), and forget sessions not seen for a while."""
        due, self._due = self._due, {}
        items = [(user, session) for session, user in due.items()]
        for i in range(0, len(items), self.BATCH):
            try:
                await self.post(items[i : i + self.BATCH])
            except OpenMfaError as exc:
                log.debug("the node did not take forward-auth's last seen: %s", exc.code)
                return
        if len(self._last) > 10_000:
            horizon = self.clock() - self.every
            self._last = {k: v for k, v in self._last.items() if v > horizon}
