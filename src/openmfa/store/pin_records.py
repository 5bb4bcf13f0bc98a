"""The change record of people's PINs (data format 13), applied like every other record
(``changes.ChangeWriter``), so a PIN replicates to every node of a farm and is in every backup.

- ``user.pin``: ``id`` (the user), ``hash`` (argon2id; None: the PIN is cleared), ``length``
  and ``at``. Replaying a record gives the same row.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select

from . import tables as t
from .changes import Payload, applier


@applier("user.pin")
def _user_pin(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.user_pins).where(t.user_pins.c.user_id == p["id"]))
    if p.get("hash") is not None:
        conn.execute(
            insert(t.user_pins).values(
                user_id=p["id"], hash=p["hash"], length=int(p["length"]), set_at=p["at"]
            )
        )


def with_pins(conn: Connection, user_ids: list[int]) -> set[int]:
    """The ones of ``user_ids`` who have a PIN."""
    out: set[int] = set()
    for i in range(0, len(user_ids), 500):
        out.update(int(r) for r in conn.scalars(_PINS, {"ids": user_ids[i : i + 500]}))
    return out


_PINS = select(t.user_pins.c.user_id).where(
    t.user_pins.c.user_id.in_(bindparam("ids", expanding=True))
)
"""Built once: every portal page about a person reads it."""


_PIN_OF = (
    select(t.user_pins.c.hash, t.user_pins.c.length)
    .join(t.users, t.users.c.id == t.user_pins.c.user_id)
    .where(t.users.c.name == bindparam("name"))
)


def pin_of(conn: Connection, name: str) -> tuple[str, int] | None:
    """``name``'s PIN (argon2id hash, length), or None when they have none."""
    row = conn.execute(_PIN_OF, {"name": name}).first()
    return None if row is None else (str(row.hash), int(row.length))
