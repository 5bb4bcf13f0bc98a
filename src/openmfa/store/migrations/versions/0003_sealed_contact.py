"""A column for users' sealed contact details (data format 2), and the schema floor.

Expand-only: adds a nullable column. Releases that know ``meta['schema.floor']`` (0.3 and later)
keep using a data set whose revision they do not know when they know its floor; format 2 — the
rows that use the column — waits for ``farm finalize`` (see ``openmfa.store.formats``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("contact_enc", sa.LargeBinary, nullable=True))
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    bind = op.get_bind()
    if bind.scalar(sa.select(meta.c.value).where(meta.c.key == "schema.floor")) is None:
        op.execute(meta.insert().values(key="schema.floor", value="0002"))


def downgrade() -> None:
    op.drop_column("users", "contact_enc")
    op.execute("DELETE FROM meta WHERE key = 'schema.floor'")
