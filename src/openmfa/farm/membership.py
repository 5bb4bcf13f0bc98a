"""Which farm this node belongs to and in what role, kept in the data file's ``meta`` table.

The farm key is sealed under the node's key file like any other secret. Every node of a farm
shares one data key (a subordinate receives it, encrypted, in its snapshot), so sealed values in
change records open everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, replace

from sqlalchemy import Connection, delete, insert, select

from ..errors import InvalidInput
from ..store import tables as t
from ..store.database import Store
from ..store.role import HANDOVER as HANDOVER
from ..store.role import MASTER as MASTER
from ..store.role import SHARED as SHARED
from ..store.role import SUBORDINATE as SUBORDINATE
from ..store.role import FarmRole

# Roles (``store.role`` reads them and says what each allows). ``handover``: a master handing
# its role to a subordinate takes no writes meanwhile.
# ``shared``: every node of a shared-database farm (one PostgreSQL database, no change feed);
# each reads and writes the database itself, so the membership rows are the same for all of
# them and a node's own URL is its member entry.
TOKEN_PREFIX = "omfa-join-"  # noqa: S105 - a marker, not a secret
_KEYS = ("farm.id", "farm.role", "farm.epoch", "farm.master_url", "farm.key", "farm.self_url")
MEMBER_PREFIX = "farm.member."


@dataclass(frozen=True)
class Membership:
    farm_id: str
    role: str
    epoch: int
    master_url: str
    key: bytes
    self_url: str = ""
    """Where the other nodes reach this node's SDK."""

    @property
    def is_master(self) -> bool:
        return self.role == MASTER

    @property
    def farm_role(self) -> FarmRole:
        """What this role allows (``store.role``: writes, leads pushes, hands over)."""
        return FarmRole(self.role, self.master_url, self.epoch)

    @property
    def shared(self) -> bool:
        return self.role == SHARED

    def with_master(self, epoch: int, master_url: str) -> Membership:
        """This node under the master at ``master_url`` (itself, when that is its own URL)."""
        role = MASTER if master_url == self.self_url else SUBORDINATE
        return replace(self, role=role, epoch=epoch, master_url=master_url)

    def join_token(self) -> str:
        """What ``farm join`` needs besides the master's URL: the farm's id and key."""
        raw = json.dumps({"farm": self.farm_id, "key": self.key.hex()}).encode()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_farm(master_url: str) -> Membership:
    return Membership(
        secrets.token_hex(8), MASTER, 1, master_url, secrets.token_bytes(32), master_url
    )


def new_shared_farm() -> Membership:
    return Membership(secrets.token_hex(8), SHARED, 1, "", secrets.token_bytes(32), "")


def parse_token(token: str) -> tuple[str, bytes]:
    """(farm id, farm key) from a join token, or a clear error."""
    bad = InvalidInput(
        "this is not a farm join token; copy the whole token `openmfa farm init` printed "
        "(it starts with omfa-join-)"
    )
    if not token.startswith(TOKEN_PREFIX):
        raise bad
    body = token[len(TOKEN_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        farm_id, key = str(data["farm"]), bytes.fromhex(data["key"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad from None
    if len(key) != 32:
        raise bad
    return farm_id, key


def load(store: Store, conn: Connection | None = None) -> Membership | None:
    """This node's membership, or None when it is not in a farm."""
    if conn is None:
        with store.read() as c:
            return load(store, c)
    rows = dict(
        conn.execute(select(t.meta.c.key, t.meta.c.value).where(t.meta.c.key.in_(_KEYS))).all()
    )
    if "farm.id" not in rows:
        return None
    role = FarmRole.from_meta(rows)
    if role.name == SHARED:
        me = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key == MEMBER_PREFIX + store.node_name)
        ).scalar()
        rows["farm.self_url"] = str(json.loads(me)["url"]) if me else ""
    return Membership(
        rows["farm.id"],
        role.name,
        role.epoch,
        role.master_url,
        store.box.open(bytes.fromhex(rows["farm.key"]), "farm-key"),
        rows.get("farm.self_url", ""),
    )


def save(store: Store, conn: Connection, m: Membership) -> None:
    values = {
        "farm.id": m.farm_id,
        "farm.role": m.role,
        "farm.epoch": str(m.epoch),
        "farm.master_url": m.master_url,
        "farm.key": store.box.seal(m.key, "farm-key").hex(),
        "farm.self_url": m.self_url,
    }
    conn.execute(delete(t.meta).where(t.meta.c.key.in_(_KEYS)))
    conn.execute(insert(t.meta), [{"key": k, "value": v} for k, v in values.items()])


def members(store: Store) -> dict[str, str]:
    """Every node of the farm (replicated with the configuration): name -> SDK URL."""
    with store.read() as conn:
        rows = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key.like(MEMBER_PREFIX + "%"))
        ).all()
    found = [json.loads(r[0]) for r in rows]
    return {str(f["name"]): str(f["url"]) for f in found}


def farm_format(store: Store) -> int:
    """The data format the farm's change records are written in (``farm finalize`` moves it)."""
    with store.read() as conn:
        value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "farm.format")).scalar()
    return int(value) if value is not None else store.data_format()
