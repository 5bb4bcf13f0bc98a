"""Where people are signed in: the portal sessions the portal hosts report (address, browser,
first and last seen), kept at the farm's master like push requests and authorization codes.

Expand-only: one new table that no change record carries; a release that does not know it keeps
reading the data set (its floor stays 0002), and no data format is needed (nothing replicates).

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("ref", sa.String(32), primary_key=True),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("sessions", sa.JSON, nullable=False),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("seen_enc", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_portal_sessions_user", "portal_sessions", ["user_name"])
    op.create_index("ix_portal_sessions_expires", "portal_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_expires", "portal_sessions")
    op.drop_index("ix_portal_sessions_user", "portal_sessions")
    op.drop_table("portal_sessions")
