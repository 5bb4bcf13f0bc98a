"""Operator roles: a person's role in the administration console (``admin``, ``helpdesk``,
``auditor``).

Expand-only: one new table; a release that does not know it keeps reading the data set (its
floor stays 0002). Its rows are data format 15 and wait for ``farm finalize`` in a farm (see
``openmfa.store.formats``).

Revision ID: 0018
Revises: 0017
Create Date: 2027-02-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_roles")
