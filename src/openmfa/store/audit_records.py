"""The change records that look after the audit log (data format 16), applied on every node
like every other record (``changes.ChangeWriter``), so what one node forgets every node forgets.

- ``audit.prune``: ``before`` (a time): every audit row older than it is removed (the retention
  rule, ``node.audit_retention``). Each node removes its own copy: the master's whole log, a
  subordinate's rows (those it has sent and those it has not: they are as old).
- ``audit.erase``: ``name_enc`` (the person's name, sealed under the data key: the change log
  holds no erased name in the clear) and ``pseudonym``: that person's audit rows keep what
  happened, when and how it ended, and lose who and from where: ``user_name`` becomes the
  pseudonym, the sealed origin and the free text are emptied, and an operator's own name in
  ``client`` (``KEY/NAME``, exactly: names are case-sensitive) becomes ``KEY/PSEUDONYM``; their
  push requests, portal sessions and remembered browsers go too (``node.privacy``).
Replaying a record gives the same rows.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select, update

from . import formats
from . import tables as t
from .changes import Payload, applier

ERASED = "erased-name"
"""The sealing context of an erased person's name in an ``audit.erase`` record."""

_AUDIT = t.audit.c


@applier("audit.prune")
def _prune(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.audit).where(_AUDIT.at < float(p["before"])))


@applier("audit.erase")
def _erase(conn: Connection, p: Payload) -> None:
    name = formats.box_of(conn).open(bytes.fromhex(p["name_enc"]), ERASED).decode()
    pseudonym = str(p["pseudonym"])
    conn.execute(
        update(t.audit)
        .where(_AUDIT.user_name == name)
        .values(user_name=pseudonym, source_enc="", detail="")
    )
    operated = conn.execute(
        select(_AUDIT.id, _AUDIT.client).where(_AUDIT.client.endswith(f"/{name}", autoescape=True))
    ).all()
    # LIKE ignores ASCII case in SQLite: only the rows whose client ends with exactly the name
    mine = [r for r in operated if r.client.endswith(f"/{name}")]
    if mine:
        conn.execute(
            update(t.audit).where(_AUDIT.id == bindparam("rid")).values(client=bindparam("c")),
            [{"rid": r.id, "c": f"{r.client[: -len(name)]}{pseudonym}"} for r in mine],
        )
    for table in (t.push_requests, t.portal_sessions, t.remembered_browsers):
        conn.execute(delete(table).where(table.c.user_name == name))
