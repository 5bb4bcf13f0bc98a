"""OpenID Connect: the ID-token signing keys, the relying parties (applications and Microsoft
Entra ID's external authentication method), which person an Entra account is, and the
authorization codes the farm's master holds for a minute.

Expand-only: four new tables, and ``push_requests.collected_at`` (a portal sign-in takes an
approved push once; push requests live at the master and are not replicated); a release that
does not know them keeps reading the data set (its floor stays 0002). Rows in the first three
are data format 8 and wait for ``farm finalize`` in a farm (see ``openmfa.store.formats``);
codes are no configuration at all.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(8), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("private_enc", sa.LargeBinary, nullable=False),
        sa.Column("cert", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("signs_from", sa.Float, nullable=False),
    )
    op.create_table(
        "oidc_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=True),
        sa.Column("redirect_uris", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "oidc_subjects",
        sa.Column("tid", sa.String(64), primary_key=True),
        sa.Column("oid", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_oidc_subjects_user", "oidc_subjects", ["user_id"])
    op.create_table(
        "oidc_codes",
        sa.Column("code_hash", sa.LargeBinary, primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("granted", sa.JSON, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_oidc_codes_expires", "oidc_codes", ["expires_at"])
    op.add_column("push_requests", sa.Column("collected_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_requests") as batch:
        batch.drop_column("collected_at")
    op.drop_index("ix_oidc_codes_expires", "oidc_codes")
    op.drop_table("oidc_codes")
    op.drop_index("ix_oidc_subjects_user", "oidc_subjects")
    op.drop_table("oidc_subjects")
    op.drop_table("oidc_clients")
    op.drop_table("oidc_keys")
