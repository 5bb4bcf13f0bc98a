"""The change records of remembered browsers (data format 14), applied like every other record
(``changes.ChangeWriter``), so a browser remembered at the master is honoured at every node of a
farm, and one forgotten there is refused everywhere within seconds (``node.remembered``).

- ``remember.add``: ``ref``, ``hash`` (the SHA-256 of the browser's token, hex), ``user``,
  ``rule``, ``factor``, ``kind``, ``auth_time``, ``at`` (created), ``expires_at``, ``seen_enc``
  (hex). Replaying it gives the same row; the person's records past their end are dropped.
- ``remember.end``: ``ref`` (one browser), or ``user`` alone (every browser of that person).
  Replaying it removes nothing more.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from . import formats
from . import tables as t
from .changes import Change, Payload, applier

_R = t.remembered_browsers


@applier("remember.add")
def _remember_add(conn: Connection, p: Payload) -> None:
    conn.execute(delete(_R).where((_R.c.ref == p["ref"]) | (_R.c.token_hash == p["hash"])))
    # The person's records past their end go as a new one comes (the same on every node).
    conn.execute(delete(_R).where(_R.c.user_name == p["user"], _R.c.expires_at <= p["at"]))
    conn.execute(
        insert(_R).values(
            ref=p["ref"],
            token_hash=p["hash"],
            user_name=p["user"],
            rule=p["rule"],
            factor=p["factor"],
            kind=p["kind"],
            auth_time=float(p["auth_time"]),
            created_at=float(p["at"]),
            expires_at=float(p["expires_at"]),
            seen_enc=bytes.fromhex(p["seen_enc"]),
        )
    )


@applier("remember.end")
def _remember_end(conn: Connection, p: Payload) -> None:
    if p.get("ref"):
        conn.execute(delete(_R).where(_R.c.ref == p["ref"], _R.c.user_name == p["user"]))
    else:
        conn.execute(delete(_R).where(_R.c.user_name == p["user"]))


FORGOTTEN_METHOD = "every remembered browser forgotten: one of the person's methods was removed"


def forget_every(conn: Connection, user: str) -> tuple[list[Change], bool]:
    """The change that forgets every remembered browser of ``user`` (none before data format
    14), and whether there is one to forget now (what the caller audits). It goes in the
    caller's own commit (a method removed), so a browser remembered a moment before goes too."""
    if formats.local_format(conn) < formats.REMEMBER_FORMAT:
        return [], False
    some = conn.scalar(select(_R.c.ref).where(_R.c.user_name == user).limit(1)) is not None
    return [Change("remember.end", {"user": user})], some
