"""Groups: the groups a person is in, set by hand (``openmfa user group add``) or by directory
synchronisation (the groups the directory says, nested groups resolved), kept apart by
``origin`` so that neither removes the other's.

Expand-only: one new table; a release that does not know it keeps reading the data set (its
floor stays 0002). Its rows are data format 11 and wait for ``farm finalize`` in a farm (see
``openmfa.store.formats``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_groups",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("origin", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
    )
    op.create_index("ix_user_groups_name", "user_groups", ["name"])


def downgrade() -> None:
    op.drop_index("ix_user_groups_name", "user_groups")
    op.drop_table("user_groups")
