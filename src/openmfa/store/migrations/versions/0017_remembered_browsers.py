"""Remembered browsers: a browser a person asked the portal to remember after a full sign-in,
where a policy rule allows it (``--remember-minutes`` on a portal, forward-auth or OpenID
Connect rule).

Expand-only: one new table; a release that does not know it keeps reading the data set (its
floor stays 0002). Its rows are data format 14 and wait for ``farm finalize`` in a farm (see
``openmfa.store.formats``).

Revision ID: 0017
Revises: 0016
Create Date: 2027-02-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remembered_browsers",
        sa.Column("ref", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("factor", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("auth_time", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("seen_enc", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_remembered_browsers_user", "remembered_browsers", ["user_name"])


def downgrade() -> None:
    op.drop_index("ix_remembered_browsers_user", "remembered_browsers")
    op.drop_table("remembered_browsers")
