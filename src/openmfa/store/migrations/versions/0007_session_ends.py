"""Sessions ended: each "this session ends" or "every session of this person issued before now
ends" (sign-out, sign out everywhere, disable, delete, lock, unlock), so that every portal host
of the farm refuses a copied forward-auth cookie within seconds.

Expand-only: one new table; a release that does not know it keeps reading the data set (its
floor stays 0002). Rows in it are data format 6 and wait for ``farm finalize`` in a farm (see
``openmfa.store.formats``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_ends",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("session", sa.String(64), nullable=False, server_default=""),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("lock_until", sa.Float, nullable=True),
    )
    op.create_index("ix_session_ends_user", "session_ends", ["user_name", "session"])
    op.create_index("ix_session_ends_at", "session_ends", ["at"])


def downgrade() -> None:
    op.drop_index("ix_session_ends_at", "session_ends")
    op.drop_index("ix_session_ends_user", "session_ends")
    op.drop_table("session_ends")
