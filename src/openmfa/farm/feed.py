"""The master's side of replication: the ordered change feed and encrypted snapshots.

Invariant owned here: a subordinate receives change records in ``seq`` order, exactly as the
master committed them (a payload is complete, so replaying it gives the same rows), and a
snapshot is a consistent copy of the data file plus the data key, readable only with the farm
key.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, insert, select

from ..errors import InvalidInput
from ..store import tables as t
from ..store.backups import backup_sqlite
from ..store.crypto import _derive
from ..store.database import Store

SNAPSHOT_MAGIC = b"OMFS1"
MAX_BATCH = 500
REPORT_EVERY = 5.0
"""Seconds between two stored reports of one subordinate (sooner when its position moves)."""


def changes_since(store: Store, since: int, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            select(t.changes)
            .where(t.changes.c.seq > since)
            .order_by(t.changes.c.seq)
            .limit(max(1, min(limit, MAX_BATCH)))
        ).all()
    return [
        {
            "seq": r.seq,
            "format": r.format,
            "at": r.at,
            "kind": r.kind,
            "payload": json.loads(r.payload) if isinstance(r.payload, str) else r.payload,
        }
        for r in rows
    ]


def oldest_change(store: Store) -> int:
    """The oldest change record this node still keeps (0: none)."""
    with store.read() as conn:
        return int(conn.scalar(select(func.coalesce(func.min(t.changes.c.seq), 0))) or 0)


def prune_changes(store: Store, keep: int) -> int:
    """Forget all but the newest ``keep`` change records; returns how many were removed.

    The newest record always stays: it is the node's position (and the generation caches key
    on). A subordinate that needs a removed record re-bootstraps from a snapshot instead."""
    with store.write() as conn:
        newest = Store.generation(conn)
        horizon = newest - max(1, keep)
        if horizon <= 0:
            return 0
        result = conn.execute(delete(t.changes).where(t.changes.c.seq <= horizon))
        return int(result.rowcount or 0)


def _aead(farm_key: bytes) -> AESGCM:
    return AESGCM(_derive(farm_key, b"openmfa farm snapshot"))


def make_snapshot(store: Store, farm_id: str, farm_key: bytes) -> bytes:
    """The data file (SQLite online backup) and the key file, sealed with the farm key."""
    dd = store.data_dir
    with tempfile.TemporaryDirectory(dir=dd.root) as tmp:
        copy = Path(tmp) / "snapshot.db"
        backup_sqlite(dd.data_file, copy)
        data = copy.read_bytes()
    key = dd.key_file.read_bytes()
    blob = struct.pack(">I", len(key)) + key + data
    nonce = os.urandom(12)
    return SNAPSHOT_MAGIC + nonce + _aead(farm_key).encrypt(nonce, blob, farm_id.encode())


def open_snapshot(sealed: bytes, farm_id: str, farm_key: bytes) -> tuple[bytes, bytes]:
    """(key file bytes, data file bytes), or a clear error if it is not this farm's."""
    if not sealed.startswith(SNAPSHOT_MAGIC):
        raise InvalidInput("the master sent something that is not a farm snapshot")
    nonce, body = sealed[5:17], sealed[17:]
    try:
        blob = _aead(farm_key).decrypt(nonce, body, farm_id.encode())
    except InvalidTag:
        raise InvalidInput(
            "the snapshot does not open with this join token's key (a token of another farm?)"
        ) from None
    (n,) = struct.unpack_from(">I", blob)
    return blob[4 : 4 + n], blob[4 + n :]


@dataclass
class NodeReport:
    name: str
    release: str
    reads: str
    position: int
    contact: float
    address: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


class Reports:
    """What each subordinate said on its last poll; stored in ``meta`` for ``farm status``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stored: dict[str, tuple[int, float]] = {}

    def record(self, report: NodeReport) -> None:
        last = self._stored.get(report.name)
        if last and last[0] == report.position and report.contact - last[1] < REPORT_EVERY:
            return
        key = "farm.node." + report.name
        with self.store.write() as conn:
            conn.execute(delete(t.meta).where(t.meta.c.key == key))
            conn.execute(insert(t.meta).values(key=key, value=report.to_json()))
        self._stored[report.name] = (report.position, report.contact)


def stored_reports(store: Store) -> list[NodeReport]:
    with store.read() as conn:
        rows = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key.like("farm.node.%")).order_by(t.meta.c.key)
        ).all()
    return [NodeReport(**json.loads(r[0])) for r in rows]
