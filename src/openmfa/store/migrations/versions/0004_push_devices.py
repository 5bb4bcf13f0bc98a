"""Push sign-in: devices (a push method's public key), activation codes, push requests, and
per-client push settings for RADIUS.

Expand-only: new tables and columns with defaults; a release that does not know them keeps
reading the data set (its floor stays 0002). The rows that use them — push methods — are data
format 3 and wait for ``farm finalize`` in a farm (see ``openmfa.store.formats``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("method_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("webpush", sa.Text, nullable=False, server_default=""),
        sa.Column("counter", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_devices_user", "devices", ["user_id"])
    op.create_table(
        "activations",
        sa.Column("code_hash", sa.LargeBinary, primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_table(
        "push_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("method_id", sa.String(32), nullable=False),
        sa.Column("number", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("client", sa.String(255), nullable=False, server_default=""),
        sa.Column("source", sa.String(64), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.Column("device_id", sa.String(32), nullable=False, server_default=""),
    )
    op.create_index("ix_push_requests_user", "push_requests", ["user_id", "created_at"])
    op.create_table(
        "push_blocks",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
    )
    op.add_column(
        "radius_clients",
        sa.Column("push", sa.String(16), nullable=False, server_default="challenge"),
    )
    op.add_column(
        "radius_clients",
        sa.Column("hold_seconds", sa.Float, nullable=False, server_default="25"),
    )


def downgrade() -> None:
    op.drop_column("radius_clients", "hold_seconds")
    op.drop_column("radius_clients", "push")
    op.drop_table("push_blocks")
    op.drop_index("ix_push_requests_user", "push_requests")
    op.drop_table("push_requests")
    op.drop_table("activations")
    op.drop_index("ix_devices_user", "devices")
    op.drop_table("devices")
