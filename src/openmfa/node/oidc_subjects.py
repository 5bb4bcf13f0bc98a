"""Which person a Microsoft Entra ID account is, for the external authentication method: the
account's tenant (``tid``) and object id (``oid``) mapped to a user. Behind ``openmfa oidc
subject ...``.

Invariants owned here:
- an account is found by (``tid``, ``oid``) only, never by a name it carries (Microsoft:
  ``preferred_username`` is for display; an on-premises objectGUID is not ``oid``);
- the administrator makes the mapping (``map``, ``import``); first-use matching by user
  principal name happens only for a client configured ``--match-upn``, once, and is audited
  (``oidc.subject.match``) — from then on the account is mapped like any other;
- mappings are data (``oidc.subject`` records, data format 8); a deleted user's go with them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import InvalidInput, NotFound
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import OIDC_FORMAT, require

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class Subject:
    tid: str
    oid: str
    user: str
    how: str
    created_at: float


def _guid(value: str, what: str) -> str:
    value = value.strip().lower()
    if not _GUID.match(value):
        raise InvalidInput(f"{what} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    return value


class OidcSubjects:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)

    def _user_ids(self, names: set[str]) -> dict[str, int]:
        with self.store.read() as conn:
            rows = conn.execute(
                select(t.users.c.name, t.users.c.id).where(t.users.c.name.in_(names))
            )
            return {r.name: int(r.id) for r in rows}

    def map(self, user: str, oid: str, tid: str, client: str = "cli") -> Subject:
        return self.import_pairs([(user, oid, tid)], client)[0]

    def import_pairs(self, pairs: list[tuple[str, str, str]], client: str = "cli") -> list[Subject]:
        """(user, oid, tid) mappings, in one commit: all of them or none (every problem
        named)."""
        problems: list[str] = []
        checked: list[tuple[str, str, str]] = []
        for i, (user, oid, tid) in enumerate(pairs, 1):
            try:
                checked.append((user.strip(), _guid(oid, "oid"), _guid(tid, "tid")))
            except InvalidInput as exc:
                problems.append(f"line {i}: {exc.message}")
        ids = self._user_ids({u for u, _, _ in checked})
        problems += [
            f"no user named {u!r}" for u in dict.fromkeys(u for u, _, _ in checked) if u not in ids
        ]
        if problems:
            raise InvalidInput("nothing was mapped: " + "; ".join(problems[:20]))
        with self.store.read() as conn:
            require(conn, OIDC_FORMAT, "Entra ID subject mappings")
        now = time.time()
        changes = [
            Change(
                "oidc.subject", {"tid": tid, "oid": oid, "user_id": ids[u], "how": "map", "at": now}
            )
            for u, oid, tid in checked
        ]
        event = AuditEvent("oidc.subject.map", "ok", client=client, detail=f"{len(changes)} mapped")
        self.writer.commit(changes, [event])
        return [Subject(tid, oid, u, "map", now) for u, oid, tid in checked]

    def import_csv(self, raw: bytes, client: str = "cli") -> list[Subject]:
        """A CSV file of ``user,oid,tid`` lines (a first line naming those columns is skipped)."""
        try:
            rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        except UnicodeDecodeError:
            raise InvalidInput("the file is not UTF-8 text") from None
        rows = [r for r in rows if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0]] == ["user", "oid", "tid"]:
            rows = rows[1:]
        bad = [i for i, r in enumerate(rows, 1) if len(r) != 3]
        if bad:
            raise InvalidInput(f"each line is user,oid,tid; lines {bad[:10]} are not")
        return self.import_pairs([(r[0], r[1], r[2]) for r in rows], client)

    def remove(self, oid: str, tid: str, client: str = "cli") -> None:
        oid, tid = _guid(oid, "oid"), _guid(tid, "tid")
        if self.find(tid, oid) is None:
            raise NotFound("that Entra account is not mapped")
        event = AuditEvent("oidc.subject.remove", "ok", client=client, detail=f"{tid}/{oid}")
        self.writer.commit([Change("oidc.subject.remove", {"tid": tid, "oid": oid})], [event])

    def list(self) -> list[Subject]:
        s, u = t.oidc_subjects, t.users
        with self.store.read() as conn:
            rows = conn.execute(
                select(s.c.tid, s.c.oid, u.c.name, s.c.how, s.c.created_at)
                .join(u, u.c.id == s.c.user_id)
                .order_by(u.c.name, s.c.tid)
            ).all()
        return [Subject(r.tid, r.oid, r.name, r.how, r.created_at) for r in rows]

    def find(self, tid: str, oid: str) -> str | None:
        """The name of the person the account is, or None."""
        s, u = t.oidc_subjects, t.users
        with self.store.read() as conn:
            name = conn.scalar(
                select(u.c.name)
                .join(s, u.c.id == s.c.user_id)
                .where(s.c.tid == tid.lower(), s.c.oid == oid.lower())
            )
        return None if name is None else str(name)

    def match_upn(self, tid: str, oid: str, upn: str, client: str, request_id: str) -> str | None:
        """First use of an account not mapped yet, where the client allows it: the user named
        by the account's user principal name (as given, or lower case) becomes its person,
        recorded and audited. None when there is no such user."""
        tid, oid = _guid(tid, "tid"), _guid(oid, "oid")
        candidates = list(dict.fromkeys([upn.strip(), upn.strip().lower()]))
        ids = self._user_ids({c for c in candidates if c})
        name = next((c for c in candidates if c in ids), None)
        if name is None:
            return None
        payload = {"tid": tid, "oid": oid, "user_id": ids[name], "how": "upn", "at": time.time()}
        event = AuditEvent(
            "oidc.subject.match",
            "ok",
            user_name=name,
            client=client,
            request_id=request_id,
            detail=f"first use by user principal name: {tid}/{oid}",
        )
        self.writer.commit([Change("oidc.subject", payload)], [event])
        return name
