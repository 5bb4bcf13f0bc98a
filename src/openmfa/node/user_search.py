"""Finding people by their email address, which is sealed at rest (data format 2), and by
group and state.

Rules owned here:
- an address matches whatever its case and surrounding spaces (``formats.email_index``
  lower-cases it);
- from data format 16 the search reads the keyed digest (``users.email_index``, an index), so
  it costs the same for 50 people or 50,000; before it (a farm not yet finalized) it opens every
  person's address instead, slower but with the same answer;
- the answer is every person with that address (an address need not be unique), sorted by
  name; none is an empty list, never an error, so a search tells nothing more than a list would
  to a key allowed to read users;
- a list of users may be narrowed to the members of one group (its exact name, from either
  origin: by hand or from the directory; the group-name index) and to one state: ``locked``
  (locked now), ``disabled``, ``active`` (neither).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, or_, select

from ..contract import UserView
from ..errors import InvalidInput, NotFound
from ..store import formats
from ..store import tables as t
from ..store.database import Store
from .accounts import Accounts

_BY_INDEX = select(t.users.c.name).where(t.users.c.email_index == bindparam("digest"))
_EVERYONE = select(t.users.c.id, t.users.c.name, t.users.c.email, t.users.c.contact_enc)
STATES = ("locked", "disabled", "active")
"""The states a list of users can be narrowed to."""


class UserSearch:
    def __init__(self, store: Store, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts

    def listed(
        self, *, limit: int, after: str = "", prefix: str = "", group: str = "", state: str = ""
    ) -> list[UserView]:
        """Users by name, a page at a time, narrowed by name prefix, group and state."""
        where = filters(group, state, time.time())
        return self.accounts.list_users(limit=limit, after=after, prefix=prefix, where=where)

    def by_email(self, email: str) -> list[UserView]:
        if not email or len(email) > 255:
            raise InvalidInput("give an email address of 1 to 255 characters to search for")
        wanted = formats.fold_email(email)
        if not wanted:
            return []
        box = self.store.box
        with self.store.read() as conn:
            if formats.local_format(conn) >= formats.EMAIL_INDEX_FORMAT:
                digest = formats.email_index(box, wanted)
                names = list(conn.scalars(_BY_INDEX, {"digest": digest}))
            else:  # before format 16: no digests yet
                names = [
                    r.name
                    for r in conn.execute(_EVERYONE)
                    if (
                        formats.fold_email(
                            formats.open_contact(box, r.id, r.contact_enc)[0]
                            if r.contact_enc is not None
                            else r.email
                        )
                    )
                    == wanted
                ]
        found = []
        for name in sorted(names):
            try:
                found.append(self.accounts.get_user(name))
            except NotFound:  # deleted in between
                continue
        return found


def filters(group: str, state: str, now: float) -> list[ColumnElement[Any]]:
    """The conditions of ``group`` (its exact name) and ``state`` (``STATES``; "" for any)."""
    if len(group) > 128:
        raise InvalidInput("a group name has at most 128 characters")
    if state and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, not {state[:32]!r}")
    where: list[ColumnElement[Any]] = []
    if group:
        g = t.user_groups.c
        where.append(exists().where(g.user_id == t.users.c.id, g.name == group))
    locked = t.user_state.c.locked_until > now
    if state == "locked":
        where.append(locked)
    elif state == "disabled":
        where.append(t.users.c.enabled.is_(False))
    elif state == "active":
        where += [t.users.c.enabled.is_(True), or_(t.user_state.c.locked_until.is_(None), ~locked)]
    return where
