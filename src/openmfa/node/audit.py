"""Reading the audit log (writing happens with each decision and change)."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from ..contract import AuditView
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store


def query(
    store: Store,
    *,
    user: str | None = None,
    since: float | None = None,
    limit: int = 100,
    after_id: int = 0,
    actions: tuple[str, ...] = (),
    newest_first: bool = False,
) -> list[AuditView]:
    q = select(t.audit).where(t.audit.c.id > after_id)
    if user is not None:
        q = q.where(t.audit.c.user_name == user)
    if since is not None:
        q = q.where(t.audit.c.at >= since)
    if actions:
        q = q.where(t.audit.c.action.in_(actions))
    q = q.order_by(t.audit.c.id.desc() if newest_first else t.audit.c.id).limit(limit)
    with store.read() as conn:
        return [
            AuditView(
                id=r.id,
                at=r.at,
                node=r.node,
                action=r.action,
                user=r.user_name,
                client=r.client,
                method_id=r.method_id,
                result=r.result,
                reason=r.reason,
                request_id=r.request_id,
                detail=r.detail,
            )
            for r in conn.execute(q)
        ]


SIGN_INS = ("authenticate", "primary", "portal.sign_in", "push.answer", "fraud.report")
"""The events a user sees as "my recent sign-ins"."""
CHANNELS = {"portal": "portal", "adapter": "application", "admin": "application", "mobile": "phone"}
"""The channel of a sign-in that came with an API key of each scope."""


def sign_ins(store: Store, user: str, limit: int) -> list[AuditView]:
    """``user``'s recent sign-ins, newest first, each with the channel it came by (the
    scope of the API key it names, a RADIUS client, the command line)."""
    events = query(store, user=user, limit=limit, actions=SIGN_INS, newest_first=True)
    names = {e.client for e in events}
    with store.read() as conn:
        scopes = dict(
            conn.execute(
                select(t.api_keys.c.name, t.api_keys.c.scope).where(t.api_keys.c.name.in_(names))
            ).all()
        )
    for e in events:
        if e.client.startswith("radius:"):
            e.channel = "radius"
        elif e.client == "cli":
            e.channel = "cli"
        else:
            e.channel = CHANNELS.get(scopes.get(e.client, ""), "")
    return events


def record(store: Store, event: AuditEvent) -> None:
    """Write one audit event on its own (events that go with a change or a decision are
    written in that transaction instead)."""
    with store.write() as conn:
        conn.execute(insert(t.audit).values(event.row(store.node_name, time.time())))
