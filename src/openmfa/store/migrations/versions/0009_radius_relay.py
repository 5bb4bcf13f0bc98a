"""RADIUS clients relaying MS-CHAPv2 and EAP to the upstream server: ``mschap``, ``eap`` and
``reply_attributes`` (what the upstream's Access-Accept may pass to the client).

Expand-only: three columns with server defaults (MS-CHAPv2 and EAP off, the default allow-list);
a release that does not know them keeps reading and writing the data set (its floor stays 0002).
A record carrying them is written only at data format 8 (``formats.RADIUS_RELAY_FORMAT``): a
release that does not know them (0.3.0) would apply it by ignoring the extra fields and then take
that client's MS-CHAPv2 and EAP requests for PAP with an empty password, counted toward the lock
(see ``openmfa.node.radius_clients``).

Such a node, upgraded, would keep the defaults for a client added while it ran the older
release; so this revision takes the values from the newest ``radius_client.add`` record it still
keeps for each client.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT = (
    "Class,Session-Timeout,Idle-Timeout,Termination-Action,Framed-IP-Address,Framed-IP-Netmask,"
    "Framed-Route,Framed-Pool,Framed-IPv6-Prefix,Framed-IPv6-Route,Framed-IPv6-Pool,"
    "Framed-IPv6-Address,Delegated-IPv6-Prefix,Filter-Id,Acct-Interim-Interval,Tunnel-Type,"
    "Tunnel-Medium-Type,Tunnel-Private-Group-Id,Vendor-Specific"
)


def upgrade() -> None:
    op.add_column(
        "radius_clients", sa.Column("mschap", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column(
        "radius_clients", sa.Column("eap", sa.String(16), nullable=False, server_default="off")
    )
    op.add_column(
        "radius_clients",
        sa.Column("reply_attributes", sa.Text, nullable=False, server_default=DEFAULT),
    )
    _from_records(op.get_bind())


def _from_records(conn: sa.Connection) -> None:
    """Each client's options as its newest kept ``radius_client.add`` record says."""
    changes = sa.table(
        "changes", sa.column("seq", sa.Integer), sa.column("kind"), sa.column("payload", sa.JSON)
    )
    clients = sa.table(
        "radius_clients",
        sa.column("name"),
        sa.column("mschap", sa.Boolean),
        sa.column("eap"),
        sa.column("reply_attributes"),
    )
    newest: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        sa.select(changes.c.payload)
        .where(changes.c.kind == "radius_client.add")
        .order_by(changes.c.seq)
    )
    for (payload,) in rows:
        said = json.loads(payload) if isinstance(payload, str) else payload
        if isinstance(said, dict):
            newest[str(said.get("name"))] = said
    for name, said in newest.items():
        if "mschap" not in said:
            continue  # written by a release without these options: the defaults are right
        conn.execute(
            sa.update(clients)
            .where(clients.c.name == name)
            .values(
                mschap=bool(said["mschap"]),
                eap=str(said.get("eap", "off")),
                reply_attributes=str(said.get("reply_attributes", DEFAULT)),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("radius_clients") as batch:
        batch.drop_column("reply_attributes")
        batch.drop_column("eap")
        batch.drop_column("mschap")
