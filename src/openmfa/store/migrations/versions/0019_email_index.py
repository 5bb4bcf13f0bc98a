"""A person found by their email address: ``users.email_index``, a keyed digest of the sealed
address (``openmfa.store.formats.email_index``), with an index.

Expand-only: a release that does not know the column keeps reading and writing users (its floor
stays 0002). The digests are data format 16: written only once the data set is there (``farm
finalize`` in a farm, which fills them for everyone), so no release that would leave one stale
ever writes a person after the first digest.

Revision ID: 0019
Revises: 0018
Create Date: 2027-02-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_index", sa.LargeBinary, nullable=True))
    op.create_index("ix_users_email_index", "users", ["email_index"])


def downgrade() -> None:
    op.drop_index("ix_users_email_index", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_index")
