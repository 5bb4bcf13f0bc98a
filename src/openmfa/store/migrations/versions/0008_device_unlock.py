"""A push device's screen-lock credential: the WebAuthn credential (its id and public key) the
app registered at activation, with which each approval proves the phone was unlocked
(``[mobile] require_unlock``).

Expand-only: one column with a server default; a release that does not know it keeps reading
and writing the data set (its floor stays 0002). Rows that use it are data format 7 and wait for
``farm finalize`` in a farm (see ``openmfa.store.formats``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("unlock", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("unlock")
