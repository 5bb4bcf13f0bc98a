"""A person's sign-in methods as the SDK shows them (``MethodView``), read in the caller's
transaction with a statement built once: the portal's "My methods" reads them on every load."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select

from ..contract import MethodView
from ..core.verification import MethodKind
from ..store import tables as t

_LEFT = (
    select(func.count())
    .where(t.backup_codes.c.method_id == t.methods.c.id, t.backup_codes.c.used_at.is_(None))
    .scalar_subquery()
)
_METHODS = (
    select(t.methods, _LEFT.label("left"))
    .where(t.methods.c.user_id == bindparam("user_id"))
    .order_by(t.methods.c.created_at)
)
_COUNTED = (MethodKind.BACKUP_CODES, MethodKind.ACCESS_CODE)
"""The kinds whose codes left are shown."""


def methods_in(conn: Connection, user_id: int) -> list[MethodView]:
    """The methods of the user ``user_id``, oldest first."""
    return [
        MethodView(
            id=r.id,
            kind=r.kind,
            label=r.label,
            digits=r.digits,
            period=r.period,
            algorithm=r.algorithm,
            created_at=r.created_at,
            backup_codes_left=r.left if r.kind in _COUNTED else None,
        )
        for r in conn.execute(_METHODS, {"user_id": user_id})
    ]
