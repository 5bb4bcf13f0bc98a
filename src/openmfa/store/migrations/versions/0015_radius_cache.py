"""RADIUS caching: a person's last full success per RADIUS client and Calling-Station-Id, and
the requests it let in with the password alone since (``node.radius_cache``).

Expand-only: one new table of authentication state (written by the authenticator, never by
change records); a release that does not know it keeps reading the data set (its floor stays
0002) and simply never caches.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "radius_cache",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("client", sa.String(255), primary_key=True),
        sa.Column("station", sa.String(255), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("methods", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("radius_cache")
