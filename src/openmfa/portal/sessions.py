"""The portal's own sessions, kept in this process's memory and named by a random cookie.

A browser gets one on its first page (it carries the CSRF token of the sign-in form); it is
renewed — a new id, a new CSRF token — at each step of a sign-in, so an id known before the
sign-in is worth nothing after it (session fixation). A signed-in session ends after
``idle_seconds`` without a request, after ``absolute_seconds``, when the node's session token
ends, and at sign-out. The node's session token lives here; it reaches the browser only sealed
(AES-128-CBC and HMAC-SHA256, ``Fernet``) when the portal hosts share a ``session_key_file``
(:class:`Carried`): then a signed-in session also rides in a second cookie, re-sealed on every
page, that any portal host with the key restores under the same id — after a restart, or on
another host — until it has been idle for ``idle_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken

CARRY = "-carry"
"""The carry cookie is named after the session cookie, with this after it."""
MAX_IDS = 16
"""Node sessions one portal session remembers (re-authentications are a handful a day)."""
MAX_SESSIONS = 50_000
"""Oldest sessions are dropped past this many (a flood of first visits cannot fill memory)."""


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    user: str = ""
    ticket: str = ""
    """After the password: the node's ticket for the second factor."""
    return_to: str = ""
    """Forward-auth: the protected site's address to go back to after the sign-in."""
    site_step_up: bool = False
    """Forward-auth: the signed-in person confirms it is them under the sites' policy rule
    (their sign-in was for something else and does not satisfy it), then goes back there."""
    prefer: str = ""
    """The kind of the person's default method, offered first (``push``, ``passkey`` …)."""
    method_names: list[tuple[str, str]] = field(default_factory=list)
    """With a ticket: the person's methods, kind and name, as the node told (the second step
    says which one it asks for)."""
    codes: bool = True
    """With a ticket: the node said a typed code may give the second factor (``PortalStep``)."""
    pin: bool = False
    """With a ticket: the node said the sign-in's rule wants the person's PIN first."""
    remember_minutes: int = 0
    """With a ticket: the node offers to remember this browser for this long (0: no box)."""
    remember: bool = False
    """The person ticked "Remember this browser" on the second step."""
    token: str = ""
    """After the second factor: the node's session token for this user."""
    token_expires: float = 0.0
    signed_in_at: float = 0.0
    reauth: bool = False
    """The ticket is a re-authentication of the signed-in user (before a change)."""
    next_page: str = ""
    removing: str = ""
    """The method to remove once the person has confirmed it is them."""
    push_id: str = ""
    push_number: str = ""
    offer: str = ""
    offer_secret: str = ""
    offer_uri: str = ""
    offer_label: str = ""
    passkey_options: str = ""
    passkey_challenge: str = ""
    activation: dict[str, str] = field(default_factory=dict)
    push_methods_before: int = 0
    shown_once: list[str] = field(default_factory=list)
    """Backup codes, shown on the next page only."""
    notice: str = ""
    bypass_until: float = 0.0
    form_to: str = ""
    """OpenID Connect: the relying party's origin a form (or the redirects after it) may go
    to while a sign-in for it is under way (the pages' CSP ``form-action``)."""
    oidc_app: str = ""
    """The name of the application a sign-in is for (shown on the sign-in page)."""
    oidc_sent_at: float = 0.0
    """When an authorization request sent this person to sign in: a sign-in after it is
    fresh (``prompt=login``, ``max_age``), and one that still gets no code ends the request."""
    oidc_request: str = ""
    """That request (``/oidc/authorize?…``): a sign-in is fresh only for it."""
    eam_request: str = ""
    """Entra ID's sign-in: the node's sealed request, finished after the second factor."""
    eam_state: str = ""
    eam_redirect: str = ""
    session_ids: list[str] = field(default_factory=list)
    """The node sessions this one held (a re-authentication gives a new one) whose ids a
    forward-auth cookie may carry: a sign-out ends them all."""
    reported_at: float = 0.0
    reported: str = ""
    """When (monotonic) this host last told the node where it is signed in (``seen``), and
    the token it told it with."""
    reported_language: str = ""
    """The language it told the node the person reads (told again at once when it changes)."""

    @property
    def signed_in(self) -> bool:
        return bool(self.token)


class Sessions:
    def __init__(self, idle_seconds: float, absolute_seconds: float) -> None:
        self.idle = idle_seconds
        self.absolute = absolute_seconds
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return s

    def get(self, sid: str, now: float | None = None) -> Session | None:
        """The live session of a cookie's id (None when unknown, idle too long or too old)."""
        now = time.time() if now is None else now
        s = self._by_id.get(sid)
        if s is None:
            return None
        if self.ended(s, now):
            self.drop(s)
            return None
        s.seen = now
        self._by_id.move_to_end(sid)
        return s

    def ended(self, s: Session, now: float) -> bool:
        if now - s.seen > self.idle or now - s.created > self.absolute:
            return True
        return s.signed_in and s.token_expires <= now

    def renew(self, s: Session) -> Session:
        """The same session under a new id and CSRF token (each sign-in step)."""
        self._by_id.pop(s.id, None)
        s.id, s.csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        s.seen = time.time()
        self._by_id[s.id] = s
        return s

    def signing_in(self, now: float | None = None, within: float = 60.0) -> int:
        """Sign-ins under way here: a first step done, no session yet, seen lately (what a
        drained portal host lets finish before it is upgraded)."""
        now = time.time() if now is None else now
        return sum(
            1
            for s in list(self._by_id.values())
            if s.ticket and not s.signed_in and now - s.seen < within
        )

    def adopt(self, s: Session) -> None:
        """A session restored from its carry cookie (``Carried``)."""
        self._by_id[s.id] = s
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)

    def drop(self, s: Session) -> None:
        self._by_id.pop(s.id, None)

    def drop_user(self, user: str) -> int:
        """Sign a person out of every session of theirs in this portal."""
        gone = [s for s in self._by_id.values() if s.user == user and s.signed_in]
        for s in gone:
            self.drop(s)
        return len(gone)

    def __len__(self) -> int:
        return len(self._by_id)


class Attempts:
    """Sign-in attempts (passwords, codes) per client address in the last minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def full(self, address: str, now: float | None = None) -> bool:
        """Whether ``address`` has used up its minute, without counting this look."""
        now = time.monotonic() if now is None else now
        q = self._seen.get(address)
        return q is not None and sum(1 for at in q if now - at <= 60) >= self.per_minute

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self._seen) > 100_000:
            self._seen.clear()
        q = self._seen.setdefault(address, deque())
        while q and now - q[0] > 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        return True


class Carried:
    """Signed-in sessions sealed into a cookie, restored by any portal host sharing the key."""

    FIELDS = (
        "id",
        "csrf",
        "created",
        "user",
        "token",
        "token_expires",
        "signed_in_at",
        "session_ids",
    )

    def __init__(self, key: bytes, idle_seconds: float) -> None:
        derived = hashlib.sha256(b"openmfa portal session carry\0" + key).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(derived))
        self.idle = idle_seconds

    def seal(self, s: Session) -> str:
        data = {k: getattr(s, k) for k in self.FIELDS}
        return self.fernet.encrypt(json.dumps(data).encode()).decode()

    def restore(self, sessions: Sessions, value: str, sid: str, now: float) -> Session | None:
        """The session a carry cookie holds, back in ``sessions`` under its id — only when it
        is ours, younger than the idle timeout, and the id cookie names the same session."""
        if not value or not sid:
            return None
        try:
            data = json.loads(self.fernet.decrypt(value.encode(), ttl=max(1, int(self.idle))))
            s = Session(
                str(data["id"]),
                str(data["csrf"]),
                float(data["created"]),
                now,
                user=str(data["user"]),
                token=str(data["token"]),
                token_expires=float(data["token_expires"]),
                signed_in_at=float(data["signed_in_at"]),
                session_ids=[str(x) for x in data.get("session_ids", [])][:MAX_IDS],
            )
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
        if not hmac.compare_digest(s.id.encode(), sid.encode()) or not s.signed_in:
            return None
        if sessions.ended(s, now):
            return None
        sessions.adopt(s)
        return s
