"""Where a sign-in came from, and the language a person reads.

- ``audit.source_enc``: the address and browser of a sign-in (``node.audit``: sealed, as the
  portal sessions' are). Expand-only with a server default: a release that does not know it
  keeps writing audit rows (they get ""), and a farm master of such a release takes a newer
  node's relayed rows without it (it builds each row from the columns it knows). No data
  format is needed: nothing an older release reads changes meaning.
- ``users.language``: the language a person chose on the portal, for their security notices.
  It travels in ``user.update`` records, which a release reading only up to data format 9
  would drop, so it is written only once the data set is at ``formats.LANGUAGE_FORMAT``.

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("source_enc", sa.Text, nullable=False, server_default=""))
    op.add_column("users", sa.Column("language", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("source_enc")
