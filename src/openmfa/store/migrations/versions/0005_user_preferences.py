"""A user's default sign-in method, and the moment before which their portal sessions ended
("sign out everywhere").

Expand-only: two nullable columns; a release that does not know them keeps reading the data set
(its floor stays 0002). Rows that use them are data format 4 and wait for ``farm finalize`` in a
farm (see ``openmfa.store.formats``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("default_method", sa.String(32), nullable=True))
    op.add_column("users", sa.Column("sessions_after", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sessions_after")
        batch.drop_column("default_method")
