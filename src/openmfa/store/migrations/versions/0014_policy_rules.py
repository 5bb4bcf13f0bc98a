"""Policy rules: the ordered rules of who must prove what, by channel, client, group and source
network (``core.policy``), and an API key's mark that it may say where a sign-in comes from.

Expand-only: one new table and one column with a default; a release that does not know them
keeps reading the data set (its floor stays 0002). Their rows are data format 12 and wait for
``farm finalize`` in a farm (see ``openmfa.store.formats``).

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_rules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("rule", sa.JSON, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.add_column(
        "api_keys",
        sa.Column("asserts_source", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("asserts_source")
    op.drop_table("policy_rules")
