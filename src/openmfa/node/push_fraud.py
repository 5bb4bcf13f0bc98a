"""Fraud reports ("this wasn't me", a device's ``fraud`` answer) and the blocks they leave.

Invariants owned here:
- a report is audited (``fraud.report``) and refuses the user's other open push requests at
  once, in the answer's transaction;
- ``[mobile] fraud_action``: ``block_push`` keeps every push of the user's refused until an
  administrator lifts the block (``unblock``); ``lock_user`` locks the user; ``record`` only
  records;
- the hooks (``fraud_command``, ``fraud_webhook``) run on a thread of their own: a slow or
  failing hook never holds or fails the answer; a failure is logged.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading
import time
from typing import Any

import httpx
from sqlalchemy import Connection, delete, insert, update

from ..config import Config
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store
from .accounts import Accounts, Actor
from .audit import seal_origin

log = logging.getLogger("openmfa.push")
CLI = Actor()
LOCKED_FOR = 10 * 365 * 86400
"""Seconds a ``lock_user`` fraud action locks the user (until an administrator unlocks)."""


class FraudHooks:
    def __init__(self, store: Store, config: Config, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        m = config.values["mobile"]
        self.action = str(m["fraud_action"])
        self.command = str(m["fraud_command"])
        self.webhook = str(m["fraud_webhook"])

    def report(self, conn: Connection, row: Any, device_id: str, now: float) -> None:
        """Push request ``row`` was reported by ``device_id``: audited, acted on in ``conn``'s
        transaction, and the hooks told."""
        event = AuditEvent(
            "fraud.report",
            "ok",
            user_name=row.user_name,
            method_id=device_id,
            reason=self.action,
            request_id=row.request_id,
            detail=f"push {row.id} from {row.client} ({row.source or 'no address'})",
            client=row.client,
            # Where the reported sign-in came from: the person's notice says it ("From").
            source_enc=seal_origin(self.store.box, row.user_name, row.source),
        )
        conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))
        # No push for the user anywhere until an administrator looks: refuse the open ones too.
        conn.execute(
            update(t.push_requests)
            .where(t.push_requests.c.user_id == row.user_id, t.push_requests.c.status == "pending")
            .values(status="denied", decided_at=now)
        )
        if self.action == "block_push":
            conn.execute(delete(t.push_blocks).where(t.push_blocks.c.user_id == row.user_id))
            conn.execute(insert(t.push_blocks).values(user_id=row.user_id, at=now, reason="fraud"))
        elif self.action == "lock_user":
            conn.execute(
                update(t.user_state)
                .where(t.user_state.c.user_id == row.user_id)
                .values(locked_until=now + LOCKED_FOR)
            )
        self._notify(row, device_id, now)

    def unblock(self, name: str, actor: Actor = CLI) -> bool:
        """Lift the user's push block; whether there was one."""
        user_id = self.accounts.user_id(name)
        with self.store.write() as conn:
            gone = conn.execute(delete(t.push_blocks).where(t.push_blocks.c.user_id == user_id))
            event = AuditEvent("push.unblock", "ok", user_name=name, client=actor.client)
            conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))
        return bool(gone.rowcount)

    def _notify(self, row: Any, device_id: str, now: float) -> None:
        if not self.command and not self.webhook:
            return
        event = json.dumps(
            {
                "event": "fraud.report",
                "user": row.user_name,
                "device_id": device_id,
                "push_id": row.id,
                "client": row.client,
                "source": row.source,
                "at": now,
                "action": self.action,
                "node": self.store.node_name,
            }
        )
        threading.Thread(target=self._run_hooks, args=(event,), daemon=True).start()

    def _run_hooks(self, event: str) -> None:
        if self.command:
            try:
                subprocess.run(
                    shlex.split(self.command), input=event.encode(), timeout=30, check=True
                )
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("[mobile] fraud_command failed: %s", exc)
        if self.webhook:
            try:
                httpx.post(
                    self.webhook,
                    content=event,
                    headers={"content-type": "application/json"},
                    timeout=10,
                ).raise_for_status()
            except httpx.HTTPError as exc:
                log.error("[mobile] fraud_webhook %s failed: %s", self.webhook, exc)
