"""PINs: a person's PIN for policy rules that want one (``--pin required``), as an argon2id hash
and its length.

Expand-only: one new table; a release that does not know it keeps reading the data set (its
floor stays 0002). Its rows are data format 13 and wait for ``farm finalize`` in a farm (see
``openmfa.store.formats``).

Revision ID: 0016
Revises: 0015
Create Date: 2027-01-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_pins",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(255), nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_pins")
