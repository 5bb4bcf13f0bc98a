"""Bringing people over: the directory a user comes from (and their immutable id there), the
state of each directory source's synchronisation, and the inventory of imported OATH tokens.

Expand-only: two nullable columns and two new tables; a release that does not know them keeps
reading the data set (its floor stays 0002). Rows that use them are data format 5 and wait for
``farm finalize`` in a farm (see ``openmfa.store.formats``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("source", sa.String(64), nullable=True))
    op.add_column("users", sa.Column("external_id", sa.String(128), nullable=True))
    op.create_index("ix_users_source_external", "users", ["source", "external_id"], unique=True)
    op.create_table(
        "tokens",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary, nullable=False),
        sa.Column("digits", sa.Integer, nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("counter", sa.Integer, nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False, server_default=""),
        sa.Column("imported_at", sa.Float, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("method_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_tokens_user", "tokens", ["user_id"])
    op.create_table(
        "directory_sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directory_sources")
    op.drop_index("ix_tokens_user", "tokens")
    op.drop_table("tokens")
    op.drop_index("ix_users_source_external", "users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("external_id")
        batch.drop_column("source")
