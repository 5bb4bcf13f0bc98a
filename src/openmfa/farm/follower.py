"""A subordinate's side of replication: bootstrap from a snapshot, then follow the change feed.

Invariants owned here:
- Change records are applied in ``seq`` order, each with its record, in one transaction per
  batch; a record at or below the node's position is skipped, so a batch seen twice changes
  nothing (idempotent). The position *is* the newest stored record: it lives with the data.
- A record in a data format this release cannot read stops the applying (the node keeps
  serving from its last good copy) and is reported loudly until a newer release is installed.
- While the master is unreachable the node keeps authenticating from its own copy and retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import insert

from .. import __version__
from ..errors import FormatTooNew, OpenMfaError
from ..store import tables as t
from ..store.changes import Change, apply
from ..store.database import READS_FORMATS, DataDir, Store
from . import audit_relay
from .feed import open_snapshot
from .membership import SUBORDINATE, Membership, save
from .signing import sign
from .tasks import cancel_and_wait

log = logging.getLogger("openmfa.farm")
WAIT_SECONDS = 20.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


def reads() -> str:
    return f"{READS_FORMATS[0]}-{READS_FORMATS[1]}"


def signed(
    m: Membership, node: str, path: str, params: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """(URL, headers) of a signed GET to the master."""
    target = path + ("?" + urlencode(params) if params else "")
    return m.master_url.rstrip("/") + target, sign(m.key, node, "GET", target)


def refused(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}"


def apply_changes(store: Store, rows: list[dict[str, Any]]) -> int:
    """Apply the records after this node's position; returns how many were applied."""
    applied = 0
    with store.write() as conn:
        have = Store.generation(conn)
        for row in rows:
            seq = int(row["seq"])
            if seq <= have:
                continue
            if int(row["format"]) > READS_FORMATS[1]:
                raise FormatTooNew(
                    f"change record {seq} is in data format {row['format']}, newer than this "
                    f"release reads ({reads()}); upgrade this node. It keeps serving from its "
                    "copy as of the last record it could read"
                )
            apply(conn, Change(row["kind"], row["payload"]))
            conn.execute(
                insert(t.changes).values(
                    seq=seq,
                    format=row["format"],
                    at=row["at"],
                    kind=row["kind"],
                    payload=row["payload"],
                )
            )
            have, applied = seq, applied + 1
    return applied


def bootstrap(dd: DataDir, master_url: str, farm_id: str, key: bytes, node: str) -> int:
    """Replace this node's data with the master's snapshot; returns the snapshot's position."""
    probe = Membership(farm_id, SUBORDINATE, 0, master_url, key)
    url, headers = signed(probe, node, "/v1/farm/snapshot", {"farm": farm_id})
    try:
        resp = httpx.get(url, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise OpenMfaError(
            f"could not reach the master at {master_url} ({exc}); check the URL and that "
            "`openmfa serve` runs there"
        ) from None
    if resp.status_code != 200:
        raise OpenMfaError(f"the master at {master_url} refused the snapshot: {refused(resp)}")
    key_file, data = open_snapshot(resp.content, farm_id, key)
    epoch = int(resp.headers.get("x-omfa-epoch", "1"))
    dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{dd.data_file}{suffix}").unlink(missing_ok=True)
    for path, content in ((dd.key_file, key_file), (dd.data_file, data)):
        tmp = path.with_name(path.name + ".joining")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    store = Store.open(dd)
    try:
        with store.write() as conn:
            save(store, conn, Membership(farm_id, SUBORDINATE, epoch, master_url, key))
            audit_relay.start_from_here(conn)
            return Store.generation(conn)
    finally:
        store.close()


class Follower:
    """Runs inside ``openmfa serve`` on a subordinate."""

    def __init__(self, store: Store, membership: Membership) -> None:
        self.store = store
        self.m = membership
        self.last_contact: float | None = None
        self.problem = ""
        self.applied = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def status(self) -> dict[str, Any]:
        return {
            "master": self.m.master_url,
            "last_contact": self.last_contact,
            "applied": self.applied,
            "problem": self.problem,
        }

    async def _run(self) -> None:
        failures = 0
        async with httpx.AsyncClient(timeout=WAIT_SECONDS + 10) as client:
            while True:
                try:
                    await self._once(client)
                    failures = 0
                except FormatTooNew as exc:
                    self._trouble(exc.message, error=True)
                    await asyncio.sleep(30)
                except (OpenMfaError, httpx.HTTPError, ValueError, KeyError) as exc:
                    text = exc.message if isinstance(exc, OpenMfaError) else repr(exc)
                    self._trouble(f"cannot follow the master at {self.m.master_url}: {text}")
                    await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                    failures += 1

    def _trouble(self, text: str, *, error: bool = False) -> None:
        if text != self.problem:
            (log.error if error else log.warning)("%s", text)
        self.problem = text

    def _position(self) -> int:
        with self.store.read() as conn:
            return Store.generation(conn)

    async def _once(self, client: httpx.AsyncClient) -> None:
        since = await asyncio.to_thread(self._position)
        params = {
            "since": since,
            "wait": WAIT_SECONDS,
            "release": __version__,
            "reads": reads(),
        }
        url, headers = signed(self.m, self.store.node_name, "/v1/farm/changes", params)
        resp = await client.get(url, headers=headers)
        if resp.status_code != 200:
            raise OpenMfaError(refused(resp))
        rows = resp.json()["changes"]
        self.last_contact = time.time()
        self.applied += await asyncio.to_thread(apply_changes, self.store, rows)
        if self.problem:
            log.info("following the master at %s again", self.m.master_url)
        self.problem = ""
