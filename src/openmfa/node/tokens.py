"""The OATH token inventory: import (PSKC, CSV), list, assign to a user, claim by serial and
code, remove. Behind ``openmfa token ...`` and the SDK's ``/v1/tokens`` routes.

Invariants owned here: a token's seed is sealed at rest (under ``token:SERIAL`` in the inventory,
under the method's id once it is a user's method) and never printed; an import is one commit —
every token of the file or none; a serial already in the inventory is reported, never
overwritten, so an import can be run again safely.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, insert, select

from ..config import Config
from ..contract import MethodView, TokenView
from ..core import hotp, token_files, totp
from ..core.token_files import TokenFileError, TokenRecord
from ..errors import Conflict, InvalidInput, NotFound
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from .accounts import Accounts, Actor

BATCH = 500
"""Tokens per ``token.add`` change record (a replica applies one record at a time)."""
CLAIM_TRIES = 5
"""Wrong codes a user may give when claiming tokens within ``CLAIM_WINDOW`` seconds."""
CLAIM_WINDOW = 900.0
CLI = Actor()
"""The local command line (``openmfa token ...``) as the one who asked."""


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    assigned: dict[str, str] = field(default_factory=dict)  # serial -> user
    duplicates: list[str] = field(default_factory=list)
    unmatched: dict[str, str] = field(default_factory=dict)  # serial -> the user named
    created: list[str] = field(default_factory=list)  # users added (create_users)
    dry_run: bool = False

    def summary(self) -> str:
        return (
            f"added={len(self.added)} assigned={len(self.assigned)} "
            f"duplicates={len(self.duplicates)} unmatched={len(self.unmatched)}"
        )


SAID = 20
"""At most this many of a file's problems are said (the rest counted)."""


def read_file(raw: bytes, fmt: str, secret: bytes | None) -> list[TokenRecord]:
    """Parse a token file; ``InvalidInput`` lists every problem (and names no secret)."""
    try:
        if fmt == "pskc":
            return token_files.pskc_tokens(raw, secret)
        if fmt == "csv":
            return token_files.csv_tokens(raw)
        if fmt == "privacyidea":
            return token_files.privacyidea_tokens(raw, secret)
    except TokenFileError as exc:
        said = exc.problems[:SAID]
        if len(exc.problems) > SAID:
            said.append(f"and {len(exc.problems) - SAID} more")
        raise InvalidInput("the file was not imported: " + "; ".join(said)) from None
    raise InvalidInput(f"format must be pskc, csv or privacyidea, not {fmt!r}")


def file_secret(raw: bytes, fmt: str, given: str) -> bytes | None:
    """What opens an encrypted token file, from what a person typed ("": none): a PSKC file's
    password (PBKDF2), or its pre-shared key in hexadecimal; privacyIDEA's printed key."""
    if not given:
        return None
    if fmt == "pskc" and b"derivedkey" not in raw.lower():  # a pre-shared key, not a password
        try:
            return bytes.fromhex("".join(given.split()))
        except ValueError:
            raise InvalidInput(
                "this file is encrypted with a pre-shared key: give the key in hexadecimal"
            ) from None
    return given.encode()


def guess_format(name: str, raw: bytes) -> str:
    head = raw.lstrip()[:200].lower()
    if head.startswith(b"gaaaaa"):  # a Fernet token: privacyIDEA's own export
        return "privacyidea"
    by_name = name.lower().endswith((".xml", ".pskc", ".pskcxml"))
    return "pskc" if by_name or head[:1] == b"<" else "csv"


def user_of(named: str) -> str:
    """The user name a token file names: the name itself, or the value of a DN's first RDN
    (``UID=jsmith,DC=example`` → ``jsmith``)."""
    m = re.match(r"\s*(?:uid|cn|samaccountname)\s*=\s*([^,]+)", named, flags=re.I)
    return m.group(1).strip() if m else named.strip()


class Tokens:
    def __init__(self, store: Store, config: Config, accounts: Accounts | None = None) -> None:
        self.store = store
        self.config = config
        self.writer = ChangeWriter(store)
        self.accounts = accounts or Accounts(store, config)

    # -- import ---------------------------------------------------------------------------

    def import_records(
        self,
        records: list[TokenRecord],
        *,
        assign_by: str = "serial",
        create_users: bool = False,
        dry_run: bool = False,
        actor: Actor = CLI,
    ) -> ImportReport:
        """Store every new token; with ``assign_by="user"``, make each token whose file names
        an existing user that user's method at once (``create_users``: add the users the file
        names that are not here yet, first — as coming from privacyIDEA's own user store).
        One commit for the tokens."""
        if assign_by not in ("serial", "user"):
            raise InvalidInput("--assign-by must be serial (keep in the inventory) or user")
        self._require()
        report = ImportReport(dry_run=dry_run)
        with self.store.read() as conn:
            # every serial stored (one read: a long IN list is slower, and SQLite limits it)
            known = set(conn.scalars(select(t.tokens.c.serial))) & {r.serial for r in records}
            named = {user_of(r.user) for r in records if r.user}
            users = self._user_ids(conn, named)
        if create_users and assign_by == "user" and not dry_run:
            for name in sorted(named - users.keys()):
                self.accounts.add_user(name, actor=actor)
                report.created.append(name)
            with self.store.read() as conn:
                users = self._user_ids(conn, named)
        now = time.time()
        rows: list[dict[str, Any]] = []
        changes: list[Change] = []
        for r in records:
            if r.serial in known:
                report.duplicates.append(r.serial)
                continue
            report.added.append(r.serial)
            rows.append(
                {
                    "serial": r.serial,
                    "kind": r.kind,
                    "secret_enc": self.store.box.seal(r.key, _context(r.serial)).hex(),
                    "digits": r.digits,
                    "period": r.period,
                    "algorithm": r.algorithm,
                    "counter": r.counter,
                    "issuer": r.issuer[:255],
                }
            )
        for i in range(0, len(rows), BATCH):
            changes.append(Change("token.add", {"tokens": rows[i : i + BATCH], "at": now}))
        if assign_by == "user":
            for r in records:
                if r.serial in known or not r.user:
                    continue
                name = user_of(r.user)
                if name not in users:
                    report.unmatched[r.serial] = name
                    continue
                changes += self._assignment(r, users[name], now, r.last_step)
                report.assigned[r.serial] = name
        if dry_run or not changes:
            return report
        detail = report.summary()
        self.writer.commit(
            changes,
            [AuditEvent("token.import", "ok", client=actor.client, detail=detail)]
            + [
                AuditEvent("token.assign", "ok", user_name=u, client=actor.client, detail=s)
                for s, u in report.assigned.items()
            ],
        )
        return report

    # -- the inventory --------------------------------------------------------------------

    def inventory(
        self, *, unassigned: bool = False, limit: int = 1000, after: str = ""
    ) -> list[TokenView]:
        query = (
            select(t.tokens, t.users.c.name.label("user_name"))
            .join(t.users, t.users.c.id == t.tokens.c.user_id, isouter=True)
            .where(t.tokens.c.serial > after)
            .order_by(t.tokens.c.serial)
            .limit(limit)
        )
        if unassigned:
            query = query.where(t.tokens.c.method_id.is_(None))
        with self.store.read() as conn:
            if not self._has_tokens(conn):
                return []
            return [
                TokenView(
                    serial=r.serial,
                    kind=r.kind,
                    digits=r.digits,
                    period=r.period,
                    algorithm=r.algorithm,
                    issuer=r.issuer,
                    imported_at=r.imported_at,
                    user=r.user_name or "",
                    method_id=r.method_id or "",
                )
                for r in conn.execute(query)
            ]

    def counts(self) -> tuple[int, int]:
        """(tokens in the inventory, of which unassigned)."""
        with self.store.read() as conn:
            if not self._has_tokens(conn):
                return 0, 0
            total = conn.scalar(select(func.count()).select_from(t.tokens)) or 0
            free = conn.scalar(
                select(func.count()).select_from(t.tokens).where(t.tokens.c.method_id.is_(None))
            )
        return int(total), int(free or 0)

    def assign(self, serial: str, name: str, actor: Actor = CLI) -> MethodView:
        """Make the inventory token ``serial`` a method of user ``name``."""
        self._require()
        record = self._free_token(serial)
        user_id = self.accounts.user_id(name)
        return self._commit_assignment(record, user_id, name, actor)

    def claim(self, serial: str, name: str, code: str, actor: Actor = CLI) -> MethodView:
        """A person claims the token in their hand: its serial and a code it shows now. The
        same answer for an unknown serial and a wrong code; a few wrong tries, then a wait."""
        self._require()
        user_id = self.accounts.user_id(name)
        with self.store.read() as conn:
            wrong = conn.scalar(
                select(func.count())
                .select_from(t.audit)
                .where(
                    and_(
                        t.audit.c.action == "token.claim",
                        t.audit.c.user_name == name,
                        t.audit.c.result == "rejected",
                        t.audit.c.at > time.time() - CLAIM_WINDOW,
                    )
                )
            )
        if (wrong or 0) >= CLAIM_TRIES:
            raise Conflict("too many wrong codes for tokens; try again in 15 minutes")
        try:
            record = self._free_token(serial)
        except (NotFound, Conflict):
            record = None
        moved = self._check_code(record, code) if record is not None else None
        if record is None or moved is None:
            self._audit(AuditEvent("token.claim", "rejected", user_name=name, client=actor.client))
            raise InvalidInput("that serial number and code do not match a free token")
        kind_state, value = moved  # the code used to claim cannot sign in again
        if kind_state == "counter":
            record.counter = value
            return self._commit_assignment(record, user_id, name, actor)
        return self._commit_assignment(record, user_id, name, actor, last_step=value)

    def remove(self, serial: str, actor: Actor = CLI) -> None:
        self._free_token(serial)
        self.writer.commit(
            [Change("token.remove", {"serial": serial})],
            [AuditEvent("token.remove", "ok", client=actor.client, detail=serial)],
        )

    # -- helpers --------------------------------------------------------------------------

    def _require(self) -> None:
        with self.store.read() as conn:
            formats.require(conn, formats.DIRECTORY_FORMAT, "imported tokens")

    @staticmethod
    def _has_tokens(conn: Any) -> bool:
        return formats.local_format(conn) >= formats.DIRECTORY_FORMAT

    @staticmethod
    def _user_ids(conn: Any, names: set[str]) -> dict[str, int]:
        if not names:
            return {}
        found = conn.execute(select(t.users.c.name, t.users.c.id).where(t.users.c.name.in_(names)))
        return {r.name: int(r.id) for r in found}

    def _free_token(self, serial: str) -> TokenRecord:
        with self.store.read() as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.serial == serial)).first()
        if row is None:
            raise NotFound(f"no token with serial {serial!r} in the inventory")
        if row.method_id is not None:
            raise Conflict(f"token {serial!r} is assigned already; remove that method first")
        return TokenRecord(
            serial=row.serial,
            kind=row.kind,
            key=self.store.box.open(row.secret_enc, _context(row.serial)),
            digits=row.digits,
            period=row.period,
            algorithm=row.algorithm,
            counter=row.counter,
            issuer=row.issuer,
        )

    def _check_code(self, r: TokenRecord, code: str) -> tuple[str, int] | None:
        """("counter", next counter) or ("step", matched step) for a right code, else None."""
        code = "".join(code.split())
        policy = self.config.values["policy"]
        if r.kind == "hotp":
            found = hotp.verify(
                r.key,
                code,
                r.counter,
                look_ahead=int(policy["hotp_look_ahead"]),
                digits=r.digits,
                algorithm=r.algorithm,
            )
            return None if found is None else ("counter", found)
        match = totp.verify(
            r.key,
            code,
            time.time(),
            last_step=-1,
            drift_steps=int(policy["totp_drift_steps"]),
            digits=r.digits,
            period=r.period,
            algorithm=r.algorithm,
        )
        return None if match is None else ("step", match.step)

    def _assignment(
        self, r: TokenRecord, user_id: int, now: float, last_step: int = -1
    ) -> list[Change]:
        method_id = "m" + secrets.token_hex(6)
        method = {
            "id": method_id,
            "user_id": user_id,
            "kind": r.kind,
            "label": f"token {r.serial}"[:255],
            "digits": r.digits,
            "period": r.period,
            "algorithm": r.algorithm,
            "secret_enc": self.store.box.seal(r.key, method_id).hex(),
            "counter": r.counter,
            "last_step": last_step,
            "at": now,
        }
        return [
            Change("method.add", method),
            Change(
                "token.assign", {"serial": r.serial, "user_id": user_id, "method_id": method_id}
            ),
        ]

    def _commit_assignment(
        self, r: TokenRecord, user_id: int, name: str, actor: Actor, last_step: int = -1
    ) -> MethodView:
        changes = self._assignment(r, user_id, time.time(), last_step)
        method_id = changes[0].payload["id"]
        self.writer.commit(
            changes,
            [
                AuditEvent(
                    "token.assign",
                    "ok",
                    user_name=name,
                    client=actor.client,
                    method_id=method_id,
                    request_id=actor.request_id,
                    detail=r.serial,
                )
            ],
        )
        return next(m for m in self.accounts.list_methods(name) if m.id == method_id)

    def _audit(self, event: AuditEvent) -> None:
        with self.store.write() as conn:
            conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))


def _context(serial: str) -> str:
    return f"token:{serial}"
