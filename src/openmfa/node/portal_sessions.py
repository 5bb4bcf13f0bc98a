"""Where a person is signed in: the browsers that hold a portal session of theirs, each with its
address, browser, first and last seen, and the way to end one.

A session token is sealed and stateless (``node.portal``), so the node learns of a browser only
when a portal host reports it (``/v1/portal/me/seen``, with the browser's own session token):
right after its sign-in, then at most once every ``REPORT_SECONDS`` while it is used — never a
write per request. A forward-auth cookie carries the id of the portal session that gave it, so
ending that session ends the cookie too, on every portal host, within the bound the
revocation view keeps (``revocation_max_age_seconds``; ``node.session_ends``).

Rules owned here:
- a row names a browser by ``ref``, a keyed hash of the first node session it held: a
  re-authentication (a new token, a new session id) stays the same row; the page never shows
  a session id, and a ``ref`` ends nothing without the person's own session token;
- a person sees and ends only their own rows: another person's ``ref``, or one that is not a
  ref at all, is NotFound, the same answer;
- ending a row ends every node session the browser held (``session.end``: a sign-out of it
  on every node and portal host), audited, and forgets the row;
- a row whose sessions ended (signed out, "sign out everywhere", locked, expired) is not
  listed, and is forgotten;
- the address and user agent are personal data, sealed at rest under ``portal-session:REF``;
- rows live at the farm's master only (``NotMaster`` elsewhere: the SDK's clients follow it);
- the language a report names is the person's (``users.language``, for their security
  notices): written, as a ``user.update`` that replicates, only when it changed and only once
  the data set is at ``formats.LANGUAGE_FORMAT`` (before that their notices stay in
  ``[notify] language``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

from sqlalchemy import delete, insert, select, update

from ..contract import CookieSeen, SessionList, SessionSeen, SessionView
from ..errors import KeyFileError, NotFound, NotMaster, OpenMfaError
from ..store import formats
from ..store import tables as t
from ..store.changes import Change, ChangeWriter
from ..store.database import Store
from ..store.role import read_role
from .accounts import Accounts
from .portal import Grant
from .session_ends import SessionEnds, ended_in
from .signed_in import sessions_after_in

REPORT_SECONDS = 60.0
"""How often a portal host reports a browser it serves (its last seen is this coarse)."""
MAX_ROWS = 50
"""Rows of one person listed (the newest seen); more are still ended by sign out everywhere."""
PRUNE_EVERY = 300.0

_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\b(OPR|Opera)/")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Vivaldi", re.compile(r"\bVivaldi/")),
    ("Firefox", re.compile(r"\b(Firefox|FxiOS)/")),
    ("Chromium", re.compile(r"\bChromium/")),
    ("Chrome", re.compile(r"\b(Chrome|CriOS|HeadlessChrome)/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iOS", re.compile(r"\b(iPhone|iPad|iPod)\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)


def summarise(user_agent: str) -> tuple[str, str]:
    """A user agent as (browser, operating system): ``("Firefox", "Android")``; "" for what it
    does not say."""
    browser = next((name for name, r in _BROWSERS if r.search(user_agent)), "")
    system = next((name for name, r in _SYSTEMS if r.search(user_agent)), "")
    return browser, system


class PortalSessions:
    def __init__(self, store: Store, accounts: Accounts, ends: SessionEnds) -> None:
        self.store = store
        self.accounts = accounts
        self.ends = ends
        self.writer = ChangeWriter(store)
        self._key = hmac.new(store.box.pepper, b"openmfa portal session refs", "sha256").digest()
        self._pruned = 0.0

    def ref(self, user: str, session: str) -> str:
        mac = hmac.new(self._key, f"{user}\0{session}".encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def seen(
        self,
        grant: Grant,
        address: str,
        user_agent: str,
        earlier: list[str],
        now: float,
        language: str = "",
    ) -> SessionSeen:
        """The browser of ``grant`` was seen now, at ``address`` with ``user_agent``;
        ``earlier``: the node sessions it held before this one, oldest first; ``language``:
        the one the person reads the portal in ("": not said)."""
        self._require_master()
        if language:
            self._remember_language(grant.user, language, now)
        held = list(dict.fromkeys([*earlier, grant.session_id] if grant.session_id else earlier))
        answer = SessionSeen(session_id=grant.session_id, report_seconds=REPORT_SECONDS)
        if not held:  # a token of a release before session ids: nothing to end it by
            return answer
        ref = self.ref(grant.user, held[0])
        sealed = self.store.box.seal(
            json.dumps({"a": address, "u": user_agent}).encode(), f"portal-session:{ref}"
        )
        r = t.portal_sessions.c
        with self.store.write() as conn:
            row = conn.execute(
                select(r.sessions, r.expires_at).where(r.ref == ref, r.user_name == grant.user)
            ).first()
            if row is None:
                conn.execute(
                    insert(t.portal_sessions).values(
                        ref=ref,
                        user_name=grant.user,
                        sessions=held,
                        issued_at=grant.issued_at,
                        expires_at=grant.expires_at,
                        first_seen=now,
                        last_seen=now,
                        seen_enc=sealed,
                    )
                )
            else:
                sessions = list(dict.fromkeys([*row.sessions, *held]))[-16:]
                conn.execute(
                    update(t.portal_sessions)
                    .where(r.ref == ref)
                    .values(
                        sessions=sessions,
                        expires_at=max(float(row.expires_at), grant.expires_at),
                        last_seen=now,
                        seen_enc=sealed,
                    )
                )
        self._prune(now)
        return answer

    def cookies_seen(self, seen: list[CookieSeen], now: float) -> None:
        """Forward-auth let these cookies through (a portal host reports each at most once a
        minute): the row of the browser that holds the cookie's session moves its last seen.
        A session no row of that person holds changes nothing, and nothing says so (a portal
        key learns nothing by it); no row is made, and none that ended comes back."""
        self._require_master()
        if not seen:
            return
        r = t.portal_sessions.c
        with self.store.write() as conn:
            rows = conn.execute(
                select(r.ref, r.user_name, r.sessions).where(
                    r.user_name.in_({x.user for x in seen}), r.expires_at > now
                )
            ).all()
            held = {(row.user_name, str(s)): row.ref for row in rows for s in row.sessions}
            refs = {held[x.user, x.session] for x in seen if (x.user, x.session) in held}
            if refs:
                conn.execute(
                    update(t.portal_sessions)
                    .where(r.ref.in_(refs), r.last_seen < now)
                    .values(last_seen=now)
                )

    def list(self, grant: Grant, now: float) -> SessionList:
        """The person's signed-in browsers, newest seen first (``current``: the one asking)."""
        self._require_master()
        r = t.portal_sessions.c
        with self.store.read() as conn:
            rows = list(
                conn.execute(
                    select(t.portal_sessions)
                    .where(r.user_name == grant.user, r.expires_at > now)
                    .order_by(r.last_seen.desc())
                    .limit(MAX_ROWS)
                )
            )
            after = sessions_after_in(conn, grant.user)
            gone = [
                row.ref
                for row in rows
                if row.issued_at <= after
                or ended_in(conn, grant.user, str(row.sessions[-1]), row.issued_at, now)
            ]
        views = []
        for row in rows:
            if row.ref in gone:
                continue
            sessions = [str(s) for s in row.sessions]
            address, agent = self._open(row.ref, row.seen_enc)
            browser, system = summarise(agent)
            views.append(
                SessionView(
                    id=row.ref,
                    current=grant.session_id in sessions,
                    address=address,
                    browser=browser,
                    system=system,
                    first_seen=row.first_seen,
                    last_seen=row.last_seen,
                    expires_at=row.expires_at,
                )
            )
        if gone:
            with self.store.write() as conn:
                conn.execute(delete(t.portal_sessions).where(r.ref.in_(gone)))
        return SessionList(sessions=views)

    def end(self, grant: Grant, ref: str, *, client: str, rid: str) -> None:
        """End the person's browser ``ref`` (every node session it held) on every node and
        portal host; NotFound when it is not theirs."""
        self._require_master()
        r = t.portal_sessions.c
        sessions = None
        if len(ref) <= 32:
            with self.store.read() as conn:
                sessions = conn.scalar(
                    select(r.sessions).where(r.ref == ref, r.user_name == grant.user)
                )
        if sessions is None:
            raise NotFound("there is no such session of yours (ended already?)")
        for session in dict.fromkeys(str(s) for s in sessions):
            self.ends.end(grant.user, session, client=client, rid=rid)
        with self.store.write() as conn:
            conn.execute(delete(t.portal_sessions).where(r.ref == ref))

    def _remember_language(self, user: str, language: str, now: float) -> None:
        """``user`` reads the portal in ``language``: kept for their notices when it changed
        (one read; a write only then), from data format 10 on."""
        u = t.users.c
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.LANGUAGE_FORMAT:
                return
            row = conn.execute(select(u.id, u.language).where(u.name == user)).first()
        if row is None or row.language == language:
            return
        fields = {"language": language}
        self.writer.commit([Change("user.update", {"id": row.id, "fields": fields, "at": now})])

    def _open(self, ref: str, sealed: bytes) -> tuple[str, str]:
        try:
            said = json.loads(self.store.box.open(sealed, f"portal-session:{ref}"))
            return str(said["a"]), str(said["u"])
        except (ValueError, KeyError, TypeError, KeyFileError, OpenMfaError):
            return "", ""

    def _prune(self, now: float) -> None:
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        with self.store.write() as conn:
            conn.execute(delete(t.portal_sessions).where(t.portal_sessions.c.expires_at <= now))

    def _require_master(self) -> None:
        role = read_role(self.store)
        if not role.writes:
            raise NotMaster(
                "where people are signed in is kept at the farm's master; ask it at "
                f"{role.master_url or '?'}",
                master_url=role.master_url,
            )
