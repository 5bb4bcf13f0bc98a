"""The check every call of a signed-in person's portal makes, and the "My methods" page's
reads, each in one read transaction (one trip to the thread pool for the SDK route).

A call is the person's when, in one transaction: the portal's API key is good at the data
file's current generation (so a key revoked a moment ago fails on the next call, as the README
promises), the session token is sealed by this farm for that key and not expired, the person
has not signed out everywhere since it was issued (``users.sessions_after``), and the session
has not ended (``session_ends.ended_in``: signed out, or the account locked or changed).
Nothing here is cached between calls: each is decided against the rows as they are.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from ..contract import PortalMe
from ..errors import Unauthorized
from ..store import tables as t
from ..store.database import Store
from .accounts import Accounts
from .apikeys import ApiClient, KeyRing
from .method_views import methods_in
from .portal import SESSION, Grant, PortalTokens
from .session_ends import SessionEnds, ended_in

_SESSIONS_AFTER = select(t.users.c.sessions_after).where(t.users.c.name == bindparam("name"))


def sessions_after_in(conn: Connection, user: str) -> float:
    """Sessions of ``user`` issued before this moment are void (they signed out everywhere;
    0: none), read in ``conn``'s transaction."""
    return float(conn.scalar(_SESSIONS_AFTER, {"name": user}) or 0.0)


class SignedIn:
    """The signed-in person behind a portal call (``check``), and what "My methods" shows
    them (``me``)."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        portal: PortalTokens,
        accounts: Accounts,
        session_ends: SessionEnds,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.portal = portal
        self.accounts = accounts
        self.session_ends = session_ends

    def check(
        self, key: str | None, session: str, now: float, *, fresh: bool = False
    ) -> tuple[ApiClient, Grant]:
        """The portal's key and the person its session token names (``fresh``: signed in
        within ``[portal] reauth_minutes``, as a change of sign-in methods needs); else
        Unauthorized (or Forbidden: a key without the portal's scope)."""
        with self.store.read() as conn:
            return self._check(conn, key, session, now, fresh)

    def me(self, key: str | None, session: str, now: float) -> tuple[PortalMe, Grant]:
        """The signed-in person and their methods (``GET /v1/portal/me``), and the session."""
        with self.store.read() as conn:
            _, grant = self._check(conn, key, session, now, False)
            user, user_id = self.accounts.user_in(conn, grant.user)
            methods = methods_in(conn, user_id)
        me = PortalMe(
            user=user,
            methods=methods,
            session_id=grant.session_id,
            session_issued_at=grant.issued_at,
            subject=self.session_ends.subject(grant.user),
            bypass_seconds=self.portal.bypass_seconds,
        )
        return me, grant

    def _check(
        self, conn: Connection, key: str | None, session: str, now: float, fresh: bool
    ) -> tuple[ApiClient, Grant]:
        client = self.keyring.check(conn, Store.generation(conn), key, now)
        client.require("portal")
        grant = self.portal.check(session, SESSION, client.name, now)
        if grant.issued_at <= sessions_after_in(conn, grant.user):
            raise Unauthorized("the session ended (signed out everywhere); sign in again")
        if ended_in(conn, grant.user, grant.session_id, grant.issued_at, now):
            raise Unauthorized(
                "the session ended (signed out, or the account changed); sign in again"
            )
        if fresh:
            grant.require_fresh(self.portal.reauth_minutes, now)
        return client, grant
