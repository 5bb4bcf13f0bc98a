"""The change record of operator roles (data format 15), applied like every other record
(``changes.ChangeWriter``), so a role replicates to every node of a farm and is in every backup.

- ``user.role``: ``id`` (the user), ``role`` (``admin``, ``helpdesk``, ``auditor``; None: the
  role is taken away) and ``at``. Replaying a record gives the same row.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import Connection, bindparam, delete, insert, select

from ..config import OPERATOR_ROLES
from . import tables as t
from .changes import Payload, applier


@applier("user.role")
def _user_role(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.user_roles).where(t.user_roles.c.user_id == p["id"]))
    if p.get("role") is not None:
        conn.execute(insert(t.user_roles).values(user_id=p["id"], role=p["role"], set_at=p["at"]))


def roles_of(conn: Connection, user_ids: list[int]) -> dict[int, str]:
    """The role of each of ``user_ids`` who has one."""
    out: dict[int, str] = {}
    for i in range(0, len(user_ids), 500):
        chunk = {"ids": user_ids[i : i + 500]}
        out.update((int(r.user_id), str(r.role)) for r in conn.execute(_ROLES, chunk))
    return out


_ROLES = select(t.user_roles.c.user_id, t.user_roles.c.role).where(
    t.user_roles.c.user_id.in_(bindparam("ids", expanding=True))
)
"""Built once: every portal page about a person reads it."""


_ROLE_OF = (
    select(t.user_roles.c.role)
    .join(t.users, t.users.c.id == t.user_roles.c.user_id)
    .where(t.users.c.name == bindparam("name"))
)


def role_of(conn: Connection, name: str) -> str:
    """``name``'s role ("" when they have none, or no such user)."""
    return str(conn.scalar(_ROLE_OF, {"name": name}) or "")


def role_from_groups(mapping: dict[str, list[str]], groups: dict[str, list[str]]) -> str:
    """The operator role ``[directory] role_groups`` (``mapping``: role -> group names) gives a
    person in ``groups`` (origin -> names; only the directory's count): the strongest role
    (``config.OPERATOR_ROLES``' order) one of whose groups they are in, or "". Names compare
    exactly, but for the case of ASCII letters (``_fold``)."""
    theirs = {_fold(g) for g in groups.get("directory", ())}
    if not mapping or not theirs:
        return ""
    for role in OPERATOR_ROLES:
        if any(_fold(g) in theirs for g in mapping.get(role, ())):
            return role
    return ""


def role_groups_of(mapping: dict[str, list[str]], groups: dict[str, list[str]]) -> list[str]:
    """The person's directory groups that ``mapping`` gives a role (for a refusal's words)."""
    given = {_fold(g) for names in mapping.values() for g in names}
    return sorted(g for g in groups.get("directory", ()) if _fold(g) in given)


def _fold(name: str) -> str:
    """A group name as role groups compare it: ASCII letters lower-cased, nothing else changed
    (``casefold`` would make a long s (U+017F) or a Kelvin sign equal to ASCII letters)."""
    return "".join(c.lower() if c.isascii() else c for c in unicodedata.normalize("NFC", name))
