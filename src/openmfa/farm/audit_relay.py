"""Audit events of every node reach the master; none are lost across restarts or outages.

Invariant owned here: a subordinate's audit rows are sent in id order; the master stores, per
node, the highest row id it has taken (``meta`` ``farm.audit.<node>``) in the same transaction
as the rows, and skips what it has. The subordinate moves its own mark (``farm.audit_sent``)
only after the master's answer. So a lost answer means a resend, never a loss or a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from sqlalchemy import Connection, delete, func, insert, select

from ..store import tables as t
from ..store.database import Store
from .membership import Membership
from .peers import acall
from .tasks import cancel_and_wait

log = logging.getLogger("openmfa.farm")
AUDIT_PATH = "/v1/farm/audit"
SENT = "farm.audit_sent"
BATCH = 500
INTERVAL = 1.0
_COLUMNS = t.AUDIT_COLUMNS


def _get_mark(conn: Connection, key: str) -> int:
    value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
    return int(value or 0)


def _set_mark(conn: Connection, key: str, value: int) -> None:
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    conn.execute(insert(t.meta).values(key=key, value=str(value)))


def start_from_here(conn: Connection) -> None:
    """At join: the audit rows copied in the snapshot are the master's own; send none of them."""
    newest = conn.execute(select(func.coalesce(func.max(t.audit.c.id), 0))).scalar()
    _set_mark(conn, SENT, int(newest or 0))


def pending(store: Store, limit: int = BATCH) -> list[dict[str, Any]]:
    with store.read() as conn:
        sent = _get_mark(conn, SENT)
        rows = conn.execute(
            select(t.audit).where(t.audit.c.id > sent).order_by(t.audit.c.id).limit(limit)
        ).all()
    return [{"origin_id": r.id, **{c: getattr(r, c) for c in _COLUMNS}} for r in rows]


def mark_sent(store: Store, through: int) -> None:
    with store.write() as conn:
        if through > _get_mark(conn, SENT):
            _set_mark(conn, SENT, through)


def receive(store: Store, node: str, rows: list[dict[str, Any]]) -> int:
    """The master's side: store the rows it does not have; returns the node's new mark."""
    key = "farm.audit." + node
    with store.write() as conn:
        have = _get_mark(conn, key)
        fresh = [r for r in rows if int(r["origin_id"]) > have]
        if fresh:
            conn.execute(insert(t.audit), [_row(r) for r in fresh])
            have = max(int(r["origin_id"]) for r in fresh)
            _set_mark(conn, key, have)
        return have


def _row(r: dict[str, Any]) -> dict[str, Any]:
    """A relayed row as this release stores it. A node of an older release sends no
    ``source_enc`` (schema 0012): none is known; one of a newer release may send columns
    this one does not know: they are left out."""
    return {c: r[c] if c in r else _DEFAULTS[c] for c in _COLUMNS}


_DEFAULTS = {"source_enc": ""}
"""Columns a node of an older release does not send, and what they are then."""


class AuditRelay:
    """Runs inside ``openmfa serve`` on a subordinate."""

    def __init__(self, store: Store, m: Membership) -> None:
        self.store = store
        self.m = m
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            # One last push, so a clean stop leaves nothing behind when the master is up.
            await self._send_all(final=True)

    async def _run(self) -> None:
        while True:
            await self._send_all(final=False)
            await asyncio.sleep(INTERVAL)

    async def _send_all(self, *, final: bool) -> None:
        try:
            async with httpx.AsyncClient(timeout=2.0 if final else 10.0) as client:
                while rows := await asyncio.to_thread(pending, self.store):
                    resp = await acall(
                        client,
                        self.m.key,
                        self.store.node_name,
                        self.m.master_url,
                        "POST",
                        AUDIT_PATH,
                        body={"rows": rows},
                    )
                    resp.raise_for_status()
                    await asyncio.to_thread(mark_sent, self.store, int(resp.json()["through"]))
                    if len(rows) < BATCH:
                        break
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # Kept locally; sent when the master answers again.
            log.debug("audit events wait for the master: %r", exc)
