"""What is held about one person: all of it, for them or their data-protection officer
(``export``), and erased on request (``erase``).

Rules owned here:
- the export is everything the node holds about the person, opened: their account (contact
  details, groups, role, whether a PIN is set), their methods and devices without a secret
  (no seed, no key, no PIN), and every audit row that names them, with where each came from;
  an export is audited (``user.export``);
- erasing removes the account with everything it holds (the deletion every node replays) and
  takes the person out of the audit log on every node (``audit.erase``,
  ``store.audit_records``): each of their rows keeps what happened, when and how it ended —
  what the log is kept for — under a pseudonym, with no origin and no free text; what the
  retention rule keeps is only that; the erasure is audited under the pseudonym, never the name;
- both need an administrator (the SDK's ``users:write``), and erasing needs data format 16.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import select

from ..config import Config
from ..contract import PersonalData
from ..errors import Conflict, NotFound
from ..store import formats
from ..store import tables as t
from ..store.audit_records import ERASED
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from . import audit
from .accounts import Accounts, Actor
from .push_devices import PushDevices
from .session_ends import end_change, ends_known

CLI = Actor()
EVERY_ROW = 1_000_000
"""At most this many audit rows in one export (a person with more gets the newest)."""


class Privacy:
    def __init__(self, store: Store, config: Config, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        self.devices = PushDevices(store, config, accounts)
        self.writer = ChangeWriter(store)

    def export(self, name: str, actor: Actor = CLI) -> PersonalData:
        """Everything held about ``name`` (NotFound if no such person)."""
        user = self.accounts.get_user(name)
        rows = audit.query(self.store, user=user.name, limit=EVERY_ROW, newest_first=True)
        said = PersonalData(
            exported_at=time.time(),
            user=user,
            methods=self.accounts.list_methods(user.name),
            devices=self.devices.list_devices(user.name),
            audit=rows,
        )
        audit.record(
            self.store,
            AuditEvent(
                "user.export",
                "ok",
                user_name=user.name,
                client=actor.client,
                request_id=actor.request_id,
                detail=f"{len(rows)} audit records",
            ),
        )
        return said

    def erase(self, name: str, actor: Actor = CLI) -> str:
        """Remove ``name`` and take them out of the audit log; the pseudonym their rows carry.
        A person already deleted (no account) has their audit records erased all the same; one
        with audit records neither is NotFound."""
        with self.store.read() as conn:
            formats.require(conn, formats.AUDIT_CARE_FORMAT, "Erasing a person")
            row = conn.execute(
                select(t.users.c.id, t.users.c.source, t.users.c.enabled).where(
                    t.users.c.name == name
                )
            ).first()
            user_id = None if row is None else row.id
            if row is not None and row.source and row.enabled:
                raise Conflict(
                    f"{name!r} comes from the directory source {row.source!r}: remove them "
                    "there first (the next synchronisation would bring them back), then erase"
                )
            if user_id is None and not conn.scalar(
                select(t.audit.c.id).where(t.audit.c.user_name == name).limit(1)
            ):
                raise NotFound(f"no user named {name!r}, and no audit record names them")
        pseudonym = f"erased-{secrets.token_hex(6)}"
        changes = []
        if user_id is not None:
            changes.append(Change("user.delete", {"id": int(user_id)}))
            if ends_known(self.store):  # a cookie naming them is refused, should it come back
                changes.append(end_change(name))
        sealed = self.store.box.seal(name.encode(), ERASED).hex()
        changes.append(Change("audit.erase", {"name_enc": sealed, "pseudonym": pseudonym}))
        event = AuditEvent(
            "user.erase",
            "ok",
            user_name=pseudonym,
            client=actor.client,
            request_id=actor.request_id,
            detail="account, methods and devices removed; audit records kept without name",
        )
        self.writer.commit(changes, [event])
        return pseudonym
