"""This node's role in a farm, as its data file says now: the one reader of ``farm.role``.

``farm.membership`` owns the membership record (it writes these ``meta`` rows); every part that
asks what the role allows — the change writer, the push service, the push relay, the upgrader
— reads it here, so a role means the same thing to each of them:

- ``alone``: not in a farm; it writes and holds its own pushes;
- ``master``: writes configuration, holds the farm's push requests;
- ``shared``: one node of a shared-database farm; every such node writes the one database;
- ``handover``: a master handing its role to a subordinate (``farm promote``): it takes no
  writes, but its open push requests are still here until the new master has taken them;
- ``subordinate``: takes changes only from its master, at ``master_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from . import tables as t
from .database import Store

ALONE, MASTER, SUBORDINATE, HANDOVER, SHARED = (
    "alone",
    "master",
    "subordinate",
    "handover",
    "shared",
)
KEYS = ("farm.role", "farm.master_url", "farm.epoch")
"""The ``meta`` rows a role is read from."""
_ROLE = select(t.meta.c.key, t.meta.c.value).where(t.meta.c.key.in_(KEYS))
"""Built once: ``read_role`` runs on every call that must reach the master."""


@dataclass(frozen=True, slots=True)
class FarmRole:
    """A role as stored (``name``), with the master's URL and the farm's epoch."""

    name: str = ALONE
    master_url: str = ""
    epoch: int = 0

    @classmethod
    def from_meta(cls, rows: Mapping[str, str]) -> FarmRole:
        """The role in ``meta`` rows (key -> value); no ``farm.role`` row: ``alone``."""
        if "farm.role" not in rows:
            return cls()
        epoch = rows.get("farm.epoch") or "0"
        return cls(str(rows["farm.role"]), str(rows.get("farm.master_url", "")), int(epoch))

    @property
    def in_farm(self) -> bool:
        return self.name != ALONE

    @property
    def writes(self) -> bool:
        """May write configuration and open push requests (alone, master, shared)."""
        return self.name in (ALONE, MASTER, SHARED)

    @property
    def handing_over(self) -> bool:
        return self.name == HANDOVER

    @property
    def follows(self) -> bool:
        """A subordinate: takes changes from its master (the follower, the claim round and the
        audit relay run)."""
        return self.name == SUBORDINATE

    @property
    def feeds(self) -> bool:
        """The master of a replicating farm: subordinates follow its change feed (a shared
        database's nodes feed no one)."""
        return self.name == MASTER

    @property
    def must_hand_over(self) -> bool:
        """The master, or one handing its role over: another node must take the role before
        this one leaves or goes back a release."""
        return self.name in (MASTER, HANDOVER)

    @property
    def leads_pushes(self) -> bool:
        """Push requests live here: where it writes, and during a handover until the new
        master has taken them (waiters then ask the new one)."""
        return self.writes or self.handing_over


def role_from(conn: Connection) -> FarmRole:
    """The role in the data file ``conn`` reads (any database of this release's tables)."""
    rows = conn.execute(_ROLE)
    return FarmRole.from_meta({str(k): str(v) for k, v in rows.all()})


def read_role(store: Store, conn: Connection | None = None) -> FarmRole:
    """This node's role now (in ``conn``'s transaction when given)."""
    if conn is not None:
        return role_from(conn)
    with store.read() as c:
        return role_from(c)
