"""API keys of the Web Service SDK: least privilege by scope, stored only as hashes.

A key reads ``omfa_<id>_<secret>``. The id finds the row; the secret is compared as a SHA-256
hash in constant time (the secret is 256 random bits, so a slow hash adds nothing). The
``KeyRing`` caches rows and is dropped whenever the configuration generation moves, so a key
revoked from the CLI stops working on the very next request of a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from ..contract import ApiKeyView
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import POLICY_FORMAT, ROLES_FORMAT, require
from .accounts import check_name

SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "authenticate",
            "push",
            "users:read",
            "users:write",
            "methods:read",
            "methods:write",
            "bypass",
            "audit:read",
            "devices",
            # What a helpdesk operator may do of users:write and methods:write (``node.roles``)
            "users:unlock",
            "access-code",
            "methods:resync",
            "devices:revoke",
            "tokens:assign",
            "roles",
            "farm:read",
        }
    ),
    # Least privilege: a sign-in only (checking a code, or the portal's two steps); everything
    # about a user needs that user's session token too (node.portal).
    # Each service beside the nodes also reports what it runs (``farm.components``).
    "portal": frozenset({"authenticate", "portal", "report"}),
    # An identity provider's or proxy's adapter: sign-ins, and the REST second factor.
    "adapter": frozenset({"authenticate", "adapter", "report"}),
    "mobile": frozenset({"devices", "report"}),
    # The administration console's host: by itself it only signs operators in (and reports
    # what it runs); what it does for one it does with their operator token, as their role
    # allows (``node.roles``).
    "console": frozenset({"console", "report"}),
}
"""What each scope may do. The keys of the hosts in a DMZ (portal, adapter, mobile) may not read
users, and so may not learn who exists (``ApiClient.neutral``); only ``push`` opens a push for a
user by name with no first factor checked (``ApiClient.require_push``): the portal pushes after
its ticket, a RADIUS client after its own password check."""
PREFIX = "omfa_"


def key_of(client: str) -> str:
    """The API key's name in an audit row's ``client``: an operator acts as ``KEY/OPERATOR``
    (``node.roles``), a key as ``KEY``."""
    return client.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class ApiClient:
    name: str
    scope: str
    asserts_source: bool = False
    """An administrator marked the key as one whose ``source`` (where a sign-in comes from)
    policy rules may believe; any other key's ``source`` is shown on the phone, never matched."""

    def require(self, permission: str) -> None:
        if permission not in SCOPES[self.scope]:
            raise Forbidden(
                f"API key {self.name!r} has scope {self.scope!r}, which may not "
                f"{permission}; use a key with a scope that allows it"
            )

    def may(self, permission: str) -> bool:
        return permission in SCOPES[self.scope]

    def require_push(self) -> None:
        """A push for a user named by the caller, with no first factor checked (a push bomb
        with a stolen key, otherwise): an administrator's key only."""
        if not self.may("push"):
            raise Forbidden(
                f"API key {self.name!r} has scope {self.scope!r}, which may not push to a user "
                "it names: a push follows a first factor (the portal's ticket, POST "
                "/v1/portal/second-factor; a RADIUS client's password check) or is asked with "
                "an administrator's key"
            )

    @property
    def neutral(self) -> bool:
        """Its answers about a user it names, with no first factor checked, do not tell
        whether the user exists (``Attempt.neutral``): it may not read users."""
        return not self.may("users:read")


@dataclass(frozen=True, slots=True)
class _KeyRow:
    name: str
    scope: str
    secret_hash: bytes
    expires_at: float | None
    revoked_at: float | None
    asserts_source: bool = False


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyRing:
    """Checks bearer tokens against the data file, cached per configuration generation.

    ``check`` is given the current generation (read in the caller's transaction); ``recent``
    answers from memory when ``check`` ran less than ``FRESH_SECONDS`` ago (under load: for the
    previous batch of authentications), and only ever with a yes — anything else goes to
    ``check``. Authentications use it before their body is read and ``check`` again inside
    their transaction."""

    FRESH_SECONDS = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._rows: dict[str, _KeyRow] = {}
        self._clock = clock
        self._fresh_at = float("-inf")
        self._internal: dict[str, _KeyRow] = {}
        """Keys that live only in this process (``internal``), never in the data file."""
        self._known: dict[str, tuple[int, ApiClient, float | None]] = {}
        """Tokens ``recent`` confirmed: (generation, client, expiry). A key's row changes only
        with the generation, so a token confirmed at this generation needs no new hash."""

    def check(self, conn: Connection, generation: int, token: str | None, now: float) -> ApiClient:
        if not token:
            raise Unauthorized("send an API key as 'Authorization: Bearer omfa_…'")
        key_id, secret = _split(token)
        with self._lock:
            self._observe(conn, generation)
            row = self._rows.get(key_id)
        return _judge(row, secret, now)

    def _observe(self, conn: Connection, generation: int) -> None:
        if generation != self._generation:
            self._rows = {
                r.id: _KeyRow(
                    r.name,
                    r.scope,
                    r.secret_hash,
                    r.expires_at,
                    r.revoked_at,
                    bool(r.asserts_source),
                )
                for r in conn.execute(select(t.api_keys))
            }
            self._rows.update(self._internal)
            self._generation = generation
        self._fresh_at = self._clock()

    def internal(self, name: str, scope: str) -> str:
        """A key for a part of this process (the Mobile App Web Service mounted in ``serve``):
        checked like any other, held only in memory, gone when the process ends."""
        import secrets

        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
        key_id, secret = f"internal{secrets.token_hex(4)}", secrets.token_urlsafe(32)
        row = _KeyRow(name, scope, _hash(secret), None, None)
        with self._lock:
            self._internal[key_id] = row
            self._rows[key_id] = row
        return f"{PREFIX}{key_id}_{secret}"

    def recent(self, token: str | None, now: float) -> ApiClient | None:
        """The key's client from memory, when the cache is fresh and the key good; else None
        (then ``check`` decides, and says why a key is refused)."""
        if not token:
            return None
        with self._lock:
            if self._clock() - self._fresh_at > self.FRESH_SECONDS:
                return None
            generation = self._generation
            known = self._known.get(token)
            if known is not None and known[0] == generation:
                if known[2] is None or now < known[2]:
                    return known[1]
                return None
            key_id, secret = _split(token)
            row = self._rows.get(key_id)
        try:
            client = _judge(row, secret, now)
        except Unauthorized:
            return None
        assert row is not None
        with self._lock:
            if len(self._known) >= 256:
                self._known.clear()
            self._known[token] = (generation, client, row.expires_at)
        return client


def _judge(row: _KeyRow | None, secret: str, now: float) -> ApiClient:
    """The client a key stands for, or Unauthorized saying why not."""
    # Compare against a dummy when the id is unknown, so timing does not reveal which ids exist.
    ok = hmac.compare_digest(_hash(secret), row.secret_hash if row else b"\0" * 32)
    if row is None or not ok:
        raise Unauthorized(
            "the API key is not valid; check it or create one with `openmfa apikey create`"
        )
    if row.revoked_at is not None:
        raise Unauthorized(f"the API key {row.name!r} was revoked; create a new one")
    if row.expires_at is not None and now >= row.expires_at:
        raise Unauthorized(f"the API key {row.name!r} has expired; create a new one")
    return ApiClient(row.name, row.scope, row.asserts_source)


def _split(token: str) -> tuple[str, str]:
    if not token.startswith(PREFIX):
        return "", token
    key_id, _, secret = token[len(PREFIX) :].partition("_")
    return key_id, secret


class ApiKeys:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)

    def create(
        self,
        name: str,
        scope: str,
        *,
        expires_days: float | None = None,
        asserts_source: bool = False,
        client: str = "cli",
    ) -> str:
        """Make a key; the token is returned once and never stored. ``asserts_source``: policy
        rules believe the ``source`` its sign-ins name (data format 12)."""
        name = check_name(name)
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if expires_days is not None and expires_days <= 0:
            raise InvalidInput("--expires-days must be greater than 0")
        with self.store.read() as conn:
            if conn.scalar(select(t.api_keys.c.id).where(t.api_keys.c.name == name)):
                raise Conflict(f"an API key named {name!r} exists already")
            if asserts_source:
                require(conn, POLICY_FORMAT, "API keys that may assert a sign-in's source")
            if scope == "console":  # an older release does not know the scope
                require(conn, ROLES_FORMAT, "API keys of scope console")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = time.time()
        payload = {
            "id": key_id,
            "name": name,
            "scope": scope,
            "at": now,
            "secret_hash": _hash(secret).hex(),
            "expires_at": now + expires_days * 86400 if expires_days else None,
        }
        if asserts_source:
            payload["asserts_source"] = True  # only then: a record any release reads
        self.writer.commit(
            [Change("apikey.add", payload)],
            [
                AuditEvent(
                    "apikey.create",
                    "ok",
                    client=client,
                    detail=f"{name} {scope}{' asserts-source' if asserts_source else ''}",
                )
            ],
        )
        return f"{PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKeyView]:
        with self.store.read() as conn:
            return [
                ApiKeyView(
                    name=r.name,
                    id=r.id,
                    scope=r.scope,
                    created_at=r.created_at,
                    expires_at=r.expires_at,
                    revoked_at=r.revoked_at,
                    asserts_source=bool(r.asserts_source),
                )
                for r in conn.execute(select(t.api_keys).order_by(t.api_keys.c.name))
            ]

    def revoke(self, name: str, *, client: str = "cli") -> None:
        """Revoke ``name``; not the key ``client`` itself calls with (``KEY`` or
        ``KEY/OPERATOR``): that would cut off the caller — the console, say — in mid-call."""
        if name == key_of(client) and client != "cli":
            raise Conflict(
                f"{name!r} is the key this request came with; revoke it with another key or "
                "`openmfa apikey revoke` on a node"
            )
        with self.store.read() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.name == name)).first()
        if row is None:
            raise NotFound(f"no API key named {name!r}")
        if row.revoked_at is not None:
            return
        self.writer.commit(
            [Change("apikey.revoke", {"id": row.id, "at": time.time()})],
            [AuditEvent("apikey.revoke", "ok", client=client, detail=name)],
        )
