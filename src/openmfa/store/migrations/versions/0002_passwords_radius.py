"""Passwords (argon2id) for the RADIUS first factor, and RADIUS clients.

Expand-only: adds two tables; a release that does not know them still reads the data file.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passwords",
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "radius_clients",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary, nullable=False),
        sa.Column("primary_auth", sa.String(16), nullable=False),
        sa.Column("require_message_authenticator", sa.Boolean, nullable=False),
        sa.Column("combined", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("radius_clients")
    op.drop_table("passwords")
