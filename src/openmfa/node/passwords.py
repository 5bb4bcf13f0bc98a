"""The node's own user passwords (first factor for RADIUS clients with ``--primary local``).

Stored as argon2id hashes only, through the change writer (they are configuration a farm
replicates). Checking is deliberately slow (argon2), so callers run it off the event loop.
"""

from __future__ import annotations

import functools
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from ..errors import InvalidInput
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from .accounts import Accounts

_HASHER = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """A hash to check an unknown user's password against (made when first needed: hashing
    costs about 0.15 s, which every command and every node start paid at import)."""
    return _HASHER.hash("openmfa: a password nobody has")


def set_password(
    store: Store, accounts: Accounts, name: str, password: str | None, client: str = "cli"
) -> None:
    """Set (or, with ``None``, remove) a user's password."""
    if password is not None and not 8 <= len(password) <= 128:
        raise InvalidInput("a password must be 8 to 128 characters")
    ChangeWriter(store).commit(
        [password_change(accounts, name, password, time.time())],
        [AuditEvent("user.password", "ok", user_name=name, client=client)],
    )


def password_change(accounts: Accounts, name: str, password: str | None, at: float) -> Change:
    """The change record that sets ``name``'s password (its argon2id hash; None: removes it)."""
    payload = {
        "id": accounts.user_id(name),
        "at": at,
        "hash": _HASHER.hash(password) if password is not None else None,
    }
    return Change("user.password", payload)


def check_password(store: Store, name: str, password: str) -> bool:
    with store.read() as conn:
        stored = conn.scalar(
            select(t.passwords.c.hash)
            .join(t.users, t.users.c.id == t.passwords.c.user_id)
            .where(t.users.c.name == name)
        )
    try:
        # An unknown user costs the same time as a known one.
        return bool(_HASHER.verify(stored or _dummy(), password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
