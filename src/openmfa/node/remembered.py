"""Remembered browsers: "remember this browser for N days" at the User Portal, where a policy
rule of the sign-in allows it (``Rule.remember_minutes`` on a rule of the portal, forward-auth or
OpenID Connect channel; on a RADIUS rule with ``cache_uses`` that number is RADIUS caching's,
``node.radius_cache``).

After a full sign-in (the password and a second factor) whose ticket's rule allows it, the person
may ask to be remembered: the node makes a random token, gives it to the portal once (for the
browser's cookie), and keeps only its SHA-256 with the person, the rule, the second factor it
stands for and until when (``remembered_browsers``, ``remember.add`` records of data format 14,
so every node of a farm honours it). At the next sign-in the portal sends the cookie's token
with the first step (``sdk.headers.REMEMBERED_HEADER``); the password is always checked, and the
remembered record then stands for the second factor.

Rules owned here:
- only the second factor is ever remembered, and only where the rule of *this* sign-in allows
  remembering: the record must be the same person's, younger than this rule's window and than
  its own end, for a second factor of a kind this rule allows; otherwise the second step is asked
  as always (nothing says why: a stale cookie is no refusal);
- never for a sign-in Entra ID started (``portal.VIA``: its ``amr`` must vouch for this very
  sign-in), never for a bypass (no second factor to remember), never before the data set is at
  ``formats.REMEMBER_FORMAT`` (the portal offers no box then);
- an OpenID Connect application gets a remembered sign-in only if its own rule allows
  remembering; its ID token then says what was remembered, honestly: the ``amr`` of the second
  factor given at the remembered sign-in and that sign-in's ``auth_time`` (RFC 8176 has no value
  for "remembered"; an older ``auth_time`` is the conservative truth, and ``max_age`` is judged
  on it). The portal sends no remembered token when the application asks for a fresh sign-in
  (``prompt=login``, ``max_age``);
- a record ends when the person forgets it ("Where I am signed in"), and with every
  ``session.end`` of all their sessions after it was made (sign out everywhere, a password
  change, a lock, a disable, a deletion: the record is removed in the same transaction on every
  node, ``changes._session_end``), when an administrator sets their password
  (``passwords.updated_at``), and when one of their methods is removed or a device revoked
  (``remember_records.forget_every``: a ``remember.end`` of every browser of theirs in the
  same commit, audited ``portal.remember`` ``ended`` when there was one);
- every sign-in a record stood for is audited ``second factor remembered by policy rule NAME``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from ..contract import RememberedList, RememberedView
from ..core.policy import Compiled
from ..errors import KeyFileError, NotFound, OpenMfaError
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from .audit import Origin
from .portal_policy import allows

_R = t.remembered_browsers.c
MAX_ROWS = 50
"""Remembered browsers of one person listed (the newest); more still end with sign out
everywhere."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """A record that stands for the second factor of this sign-in."""

    ref: str
    rule: str
    """The rule of this sign-in (what the audit names)."""
    factor: str
    kind: str
    auth_time: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def window(rule: Compiled) -> int:
    """The minutes ``rule`` lets a browser be remembered for at the portal (0: not at all; never
    under a rule that wants a PIN: a remembered browser never typed it)."""
    r = rule.rule
    if rule.default or r.caches or r.skips or r.pin == "required":
        return 0
    return r.remember_minutes


class RememberedBrowsers:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)

    def known(self) -> bool:
        """Whether this data set takes remembered browsers (data format 14)."""
        with self.store.read() as conn:
            return formats.local_format(conn) >= formats.REMEMBER_FORMAT

    def offer(self, rule: Compiled | None, via: str = "") -> int:
        """The minutes the portal may offer to remember the browser for at this sign-in's
        second step (0: no box)."""
        if rule is None or via or not window(rule) or not self.known():
            return 0
        return window(rule)

    def check(self, token: str, user: str, rule: Compiled, now: float) -> Remembered | None:
        """The record ``token`` names, if it stands for ``user``'s second factor at a sign-in
        under ``rule`` now (see the module's rules); None otherwise."""
        minutes = window(rule)
        if not token or len(token) > 128 or not minutes:
            return None
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.REMEMBER_FORMAT:
                return None
            row = conn.execute(
                select(t.remembered_browsers).where(_R.token_hash == token_hash(token))
            ).first()
            if row is None or not hmac.compare_digest(row.user_name.encode(), user.encode()):
                return None
            changed = conn.scalar(
                select(t.passwords.c.updated_at)
                .select_from(t.passwords.join(t.users))
                .where(t.users.c.name == user)
            )
            after = conn.scalar(select(t.users.c.sessions_after).where(t.users.c.name == user))
        created = float(row.created_at)
        if not created <= now < min(float(row.expires_at), created + minutes * 60.0):
            return None
        if (changed is not None and float(changed) >= created) or float(after or 0) >= created:
            return None
        if not allows(rule, row.kind):
            return None
        return Remembered(row.ref, rule.name, row.factor, row.kind, float(row.auth_time))

    def add(
        self,
        user: str,
        rule: Compiled,
        second: tuple[str, str, float],
        origin: Origin,
        now: float,
        *,
        client: str,
        rid: str,
    ) -> tuple[str, int]:
        """Remember the browser of ``user``'s sign-in just made under ``rule``, with the second
        factor ``second`` (``amr`` value, method kind, when): the token for its cookie (given
        only here) and the minutes it lasts. NotMaster off the master."""
        minutes = window(rule)
        token = secrets.token_urlsafe(32)
        ref = secrets.token_urlsafe(12)
        seen = json.dumps({"a": origin.address, "b": origin.browser, "s": origin.system})
        sealed = self.store.box.seal(seen.encode(), f"remembered:{ref}")
        factor, kind, auth_time = second
        payload = {
            "ref": ref,
            "hash": token_hash(token),
            "user": user,
            "rule": rule.name,
            "factor": factor,
            "kind": kind,
            "auth_time": auth_time,
            "at": now,
            "expires_at": now + minutes * 60.0,
            "seen_enc": sealed.hex(),
        }
        event = AuditEvent(
            "portal.remember",
            "ok",
            user_name=user,
            client=client,
            request_id=rid,
            detail=f"browser remembered for {minutes} minutes by policy rule {rule.name}",
            source_enc=origin.sealed(self.store.box, user),
        )
        self.writer.commit([Change("remember.add", payload)], [event])
        return token, minutes

    def list(self, user: str, now: float) -> RememberedList:
        """``user``'s remembered browsers, newest first (the ones still honoured)."""
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.REMEMBER_FORMAT:
                return RememberedList(browsers=[])
            rows = list(
                conn.execute(
                    select(t.remembered_browsers)
                    .where(_R.user_name == user, _R.expires_at > now)
                    .order_by(_R.created_at.desc())
                    .limit(MAX_ROWS)
                )
            )
        views = []
        for row in rows:
            address, browser, system = self._open(row.ref, row.seen_enc)
            views.append(
                RememberedView(
                    id=row.ref,
                    address=address,
                    browser=browser,
                    system=system,
                    created_at=row.created_at,
                    expires_at=row.expires_at,
                )
            )
        return RememberedList(browsers=views)

    def end(self, user: str, ref: str, *, client: str, rid: str) -> None:
        """``user`` forgets their remembered browser ``ref`` on every node; NotFound when it is
        not theirs (or not one at all: the same answer)."""
        found = None
        if len(ref) <= 32:
            with self.store.read() as conn:
                if formats.local_format(conn) >= formats.REMEMBER_FORMAT:
                    found = conn.scalar(select(_R.ref).where(_R.ref == ref, _R.user_name == user))
        if found is None:
            raise NotFound("there is no such remembered browser of yours (forgotten already?)")
        event = AuditEvent(
            "portal.remember",
            "ended",
            user_name=user,
            client=client,
            request_id=rid,
            detail="remembered browser forgotten by its person",
        )
        self.writer.commit([Change("remember.end", {"ref": ref, "user": user})], [event])

    def _open(self, ref: str, sealed: bytes) -> tuple[str, str, str]:
        try:
            said = json.loads(self.store.box.open(sealed, f"remembered:{ref}"))
            return str(said["a"]), str(said["b"]), str(said["s"])
        except (ValueError, KeyError, TypeError, KeyFileError, OpenMfaError):
            return "", "", ""


def cookie_value_ok(token: str) -> bool:
    """A token as the node makes them (URL-safe base64), so a header carries it as is."""
    return 0 < len(token) <= 128 and all(c.isalnum() or c in "-_" for c in token)
