"""The change record of people's groups (data format 11), applied like every other record
(``changes.ChangeWriter``), so groups replicate to every node of a farm and are in every backup.

- ``user.groups``: ``id`` (the user), ``origin`` (``manual`` or ``directory``), ``add`` and
  ``remove`` (group names) and ``at``. Only rows of that origin change: a synchronisation never
  removes a group set by hand, nor an administrator one the directory gives. Replaying a record
  gives the same rows (a group added twice is there once; a group removed that is not there is
  no error).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select

from . import tables as t
from .changes import Payload, applier

ORIGINS = ("manual", "directory")
"""Who sets a group: an administrator (``manual``) or the person's directory source."""


@applier("user.groups")
def _user_groups(conn: Connection, p: Payload) -> None:
    g = t.user_groups
    origin = str(p["origin"])  # one of ORIGINS: the writers (node.groups) say which
    names = [str(n) for n in (*p.get("add", ()), *p.get("remove", ()))]
    if names:
        conn.execute(
            delete(g).where(g.c.user_id == p["id"], g.c.origin == origin, g.c.name.in_(names))
        )
    added = sorted({str(n) for n in p.get("add", ())})
    if added:
        conn.execute(
            insert(g),
            [{"user_id": p["id"], "origin": origin, "name": n, "added_at": p["at"]} for n in added],
        )


def groups_of(conn: Connection, user_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """``{user id: {origin: sorted names}}`` of ``user_ids`` (a user in no group is absent)."""
    out: dict[int, dict[str, list[str]]] = {}
    for i in range(0, len(user_ids), 500):
        for row in conn.execute(_GROUPS, {"ids": user_ids[i : i + 500]}):
            out.setdefault(row.user_id, {}).setdefault(row.origin, []).append(row.name)
    return out


_GROUPS = (
    select(t.user_groups.c.user_id, t.user_groups.c.origin, t.user_groups.c.name)
    .where(t.user_groups.c.user_id.in_(bindparam("ids", expanding=True)))
    .order_by(t.user_groups.c.user_id, t.user_groups.c.origin, t.user_groups.c.name)
)
"""Built once: every portal page about a person reads it."""
