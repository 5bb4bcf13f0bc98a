"""A subordinate's side of replication: bootstrap from a snapshot, then follow the change feed.

Invariants owned here:
- Change records are applied in ``seq`` order, each with its record, in one transaction per
  batch; a record at or below the node's position is skipped, so a batch seen twice changes
  nothing (idempotent). The position *is* the newest stored record: it lives with the data.
- A record in a data format this release cannot read stops the applying (the node keeps
  serving from its last good copy) and is reported loudly until a newer release is installed.
- A feed from a node of an older epoch is never applied (a former master is fenced). When the
  master cannot be reached, the follower asks the farm's other nodes who is master now.
- If this node holds a record the master does not (it was a master whose last changes never
  reached the others), nothing is applied and the divergence is reported: ``farm join`` again.
- While the master is unreachable the node keeps authenticating from its own copy and retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlalchemy import insert, select

from .. import __version__
from ..errors import (
    Diverged,
    Fenced,
    FormatTooNew,
    OpenMfaError,
    PeerError,
    SnapshotMismatch,
    SnapshotNeeded,
)
from ..node import audit
from ..store import tables as t
from ..store.changes import AuditEvent, Change, apply
from ..store.database import READS_FORMATS, DataDir, Store
from . import audit_relay, membership, state_push
from .feed import open_snapshot
from .membership import SUBORDINATE, Membership, save
from .peers import acall, call, checked, refused
from .tasks import cancel_and_wait
from .wire import Hello

log = logging.getLogger("openmfa.farm")
WAIT_SECONDS = 20.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
DISCOVER_AFTER = 2
"""Failed polls in a row before asking the other nodes who the master is."""


def reads() -> str:
    return f"{READS_FORMATS[0]}-{READS_FORMATS[1]}"


def position(store: Store) -> tuple[int, str]:
    """(newest record's seq, a fingerprint of it) — what the master checks divergence with."""
    with store.read() as conn:
        row = conn.execute(
            select(t.changes.c.seq, t.changes.c.at, t.changes.c.kind)
            .order_by(t.changes.c.seq.desc())
            .limit(1)
        ).first()
    if row is None:
        return 0, ""
    return int(row[0]), fingerprint(row[1], row[2])


def fingerprint(at: float, kind: str) -> str:
    return f"{at!r}/{kind}"


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


def register(master_url: str, key: bytes, node: str, url: str) -> None:
    """Tell the master this node's name and URL; it becomes a farm member everywhere."""
    try:
        resp = call(
            key, node, master_url, "POST", "/v1/farm/members", body={"name": node, "url": url}
        )
    except httpx.HTTPError as exc:
        raise PeerError(
            f"could not reach the master at {master_url} ({exc}); check the URL and that "
            "`openmfa serve` runs there"
        ) from None
    checked(resp, f"the master at {master_url} refused to register this node")


def bootstrap(dd: DataDir, master_url: str, farm_id: str, key: bytes, node: str, url: str) -> int:
    """Replace this node's data with the master's snapshot; returns the snapshot's position."""
    key_file, data, epoch = fetch_snapshot(master_url, farm_id, key, node)
    dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{dd.data_file}{suffix}").unlink(missing_ok=True)
    for path, content in ((dd.key_file, key_file), (dd.data_file, data)):
        tmp = path.with_name(path.name + ".joining")
        _write_private(tmp, content)
        os.replace(tmp, path)
    store = Store.open(dd)
    try:
        with store.write() as conn:
            m = Membership(farm_id, SUBORDINATE, epoch, master_url, key, url)
            save(store, conn, m)
            audit_relay.start_from_here(conn)
            return Store.generation(conn)
    finally:
        store.close()


def _write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` (owner-only) and sync it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def fetch_snapshot(
    master_url: str, farm_id: str, key: bytes, node: str
) -> tuple[bytes, bytes, int]:
    """(key file, data file, epoch) of the master's current snapshot."""
    try:
        resp = call(
            key,
            node,
            master_url,
            "GET",
            "/v1/farm/snapshot",
            params={"farm": farm_id},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        raise PeerError(f"could not fetch a snapshot from {master_url} ({exc})") from None
    if resp.status_code != 200:
        raise PeerError(f"the master at {master_url} refused the snapshot: {refused(resp)}")
    key_file, data = open_snapshot(resp.content, farm_id, key)
    return key_file, data, int(resp.headers.get("x-omfa-epoch", "1"))


_REPLACED = (
    "users",
    "passwords",
    "methods",
    "backup_codes",
    "api_keys",
    "radius_clients",
    "session_ends",
    "oidc_keys",
    "oidc_clients",
    "oidc_subjects",
    "user_groups",
    "policy_rules",
    "user_pins",
    "remembered_browsers",
    "user_roles",
)
"""Configuration tables a re-bootstrap takes from the snapshot as they are."""


def resync(store: Store, key_file: bytes, data: bytes) -> int:
    """Bring a serving subordinate to the master's snapshot in place; returns the new position.

    One transaction on the live data file: configuration and change records are replaced by
    the snapshot's; authentication state is merged forward (a TOTP step, an HOTP counter or a
    used backup code this node saw stays used); audit events and this node's own membership
    stay. Other connections see the change when it commits (their caches key on the data
    version and the generation)."""
    dd = store.data_dir
    if key_file != dd.key_file.read_bytes():
        raise SnapshotMismatch(
            "the master's snapshot is sealed with another data key than this node's; this node "
            "is not a copy of this farm's data: back it up and run `openmfa farm join` again"
        )
    tmp = dd.root / "resync.db"
    _write_private(tmp, data)
    db = sqlite3.connect(dd.data_file, isolation_level=None, timeout=10)
    try:
        db.execute("ATTACH DATABASE ? AS snap", (str(tmp),))
        mine = db.execute("SELECT version_num FROM main.alembic_version").fetchall()
        theirs = db.execute("SELECT version_num FROM snap.alembic_version").fetchall()
        if mine != theirs:
            raise SnapshotMismatch(
                f"the master's data is at schema {theirs}, this node's at {mine}; install the "
                "master's release here, then the node re-bootstraps by itself"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            _replace(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("DETACH DATABASE snap")
        (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM main.changes").fetchone()
    finally:
        db.close()
        tmp.unlink(missing_ok=True)
    return int(seq)


def _cols(table: str) -> str:
    return ", ".join(c.name for c in t.metadata.tables[table].columns)


def _replace(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TEMP TABLE kept_ms AS SELECT method_id, last_step, counter FROM method_state"
    )
    db.execute("CREATE TEMP TABLE kept_bc AS SELECT id, used_at FROM backup_codes")
    for table in ("method_state", "user_state", *reversed(_REPLACED), "changes"):
        db.execute(f"DELETE FROM main.{table}")  # noqa: S608 - table names are ours
    for table in (*_REPLACED, "user_state", "method_state", "changes"):
        cols = _cols(table)
        db.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM snap.{table}")  # noqa: S608
    db.execute(
        "UPDATE main.method_state SET last_step = max(method_state.last_step, k.last_step), "
        "counter = max(method_state.counter, k.counter) "
        "FROM kept_ms AS k WHERE k.method_id = method_state.method_id"
    )
    db.execute(
        "UPDATE main.backup_codes SET used_at = k.used_at FROM kept_bc AS k "
        "WHERE k.id = backup_codes.id AND backup_codes.used_at IS NULL AND k.used_at IS NOT NULL"
    )
    db.execute("DROP TABLE kept_ms")
    db.execute("DROP TABLE kept_bc")
    # Who is in the farm, the farm's data format and that of the rows come from the master;
    # this node's own membership (role, epoch, URL) and its audit-relay marks stay.
    for pattern in (membership.MEMBER_PREFIX + "%", "farm.format", "data_format"):
        db.execute("DELETE FROM main.meta WHERE key LIKE ?", (pattern,))
        db.execute(
            "INSERT INTO main.meta (key, value) SELECT key, value FROM snap.meta WHERE key LIKE ?",
            (pattern,),
        )
    problems = db.execute("PRAGMA main.foreign_key_check").fetchall()
    if problems:
        raise SnapshotMismatch(f"the snapshot would leave dangling references ({problems[:3]})")


def hello(m: Membership, node: str, url: str, timeout: float = 2.0) -> Hello | None:
    """What the node at ``url`` says of itself, or None if it does not answer (or not as a
    node of a farm would)."""
    try:
        resp = call(m.key, node, url, "GET", "/v1/farm/hello", timeout=timeout)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    try:
        return msgspec.json.decode(resp.content, type=Hello)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def wait_for_position(
    m: Membership, node: str, url: str, goal: int, timeout: float
) -> tuple[bool, Hello | None]:
    """Poll the node at ``url`` until it holds change ``goal``: (reached, what it said last)."""
    deadline = time.monotonic() + timeout
    while True:
        said = hello(m, node, url)
        if said is not None and said.position >= goal:
            return True, said
        if time.monotonic() > deadline:
            return False, said
        time.sleep(0.2)


def current_master(store: Store, m: Membership) -> tuple[int, str] | None:
    """(epoch, URL) of the master with the highest epoch any member reports, if newer or other."""
    best: tuple[int, str] | None = None
    for name, url in membership.members(store).items():
        if url == m.self_url or name == store.node_name:
            continue
        said = hello(m, store.node_name, url)
        if said is None:
            continue
        epoch, role = said.epoch, said.role
        master = url if role == membership.MASTER else said.master_url
        if role in (membership.MASTER, membership.SUBORDINATE) and (
            best is None or epoch > best[0]
        ):
            best = (epoch, master)
    if best is None or best[0] < m.epoch or (best[0] == m.epoch and best[1] == m.master_url):
        return None
    return best


class Follower:
    """Runs inside ``openmfa serve`` on a subordinate."""

    def __init__(self, store: Store, m: Membership) -> None:
        self.store = store
        self.m = m
        self.problem = ""
        self._task: asyncio.Task[None] | None = None
        self._state = ("", 0)
        """(token, position) in the master's state journal."""
        self.head = 0
        """The master's newest change record when it last answered (0: not known yet)."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        failures = 0
        async with httpx.AsyncClient(timeout=WAIT_SECONDS + 10) as client:
            while True:
                try:
                    await self._once(client)
                    failures = 0
                    continue
                except (FormatTooNew, Diverged) as exc:
                    self._trouble(exc.message, error=True)
                    await asyncio.sleep(30)
                    continue
                except Fenced as exc:
                    self._trouble(exc.message, error=True)
                    failures = DISCOVER_AFTER
                except (OpenMfaError, httpx.HTTPError, ValueError, KeyError) as exc:
                    text = exc.message if isinstance(exc, OpenMfaError) else repr(exc)
                    self._trouble(f"cannot follow the master at {self.m.master_url}: {text}")
                    failures += 1
                if failures >= DISCOVER_AFTER:
                    await self._discover()
                await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])

    async def _discover(self) -> None:
        """Ask the other nodes who the master is; adopt a newer one (the runtime follows it)."""
        found = await asyncio.to_thread(current_master, self.store, self.m)
        if found is None:
            return
        epoch, url = found
        log.warning("the farm's master is now %s (epoch %d); following it", url, epoch)
        adopted = self.m.with_master(epoch, url)

        def store_it() -> None:
            with self.store.write() as conn:
                save(self.store, conn, adopted)

        await asyncio.to_thread(store_it)
        self.m = adopted

    def _trouble(self, text: str, *, error: bool = False) -> None:
        if text != self.problem:
            (log.error if error else log.warning)("%s", text)
        self.problem = text

    def _resync(self, why: str) -> None:
        log.warning("%s", why)
        m = self.m
        key_file, data, _ = fetch_snapshot(m.master_url, m.farm_id, m.key, self.store.node_name)
        seq = resync(self.store, key_file, data)
        log.warning("re-bootstrapped from the master's snapshot: now at change %d", seq)
        audit.record(
            self.store,
            AuditEvent("farm.resync", "ok", client="farm", detail=f"from {self.m.master_url}"),
        )

    async def _once(self, client: httpx.AsyncClient) -> None:
        since, mark = await asyncio.to_thread(position, self.store)
        params = {
            "since": since,
            "mark": mark,
            "epoch": self.m.epoch,
            "wait": WAIT_SECONDS,
            "release": __version__,
            "reads": reads(),
            "state_token": self._state[0],
            "state_since": self._state[1],
        }
        resp = await acall(
            client,
            self.m.key,
            self.store.node_name,
            self.m.master_url,
            "GET",
            "/v1/farm/changes",
            params=params,
        )
        if resp.status_code == 410 and resp.json().get("code") == SnapshotNeeded.code:
            await asyncio.to_thread(self._resync, refused(resp))
            return
        if resp.status_code == 409:
            if resp.json().get("code") == Diverged.code:
                raise Diverged(refused(resp))
            raise Fenced(f"{self.m.master_url} does not lead this node: {refused(resp)}")
        data = checked(resp, "the master refused the change feed")
        if int(data["epoch"]) < self.m.epoch:
            raise Fenced(
                f"{self.m.master_url} answers as master of epoch {data['epoch']}, older than "
                f"this node's {self.m.epoch}: it is a former master; looking for the current one"
            )
        await asyncio.to_thread(apply_changes, self.store, data["changes"])
        self.head = int(data.get("head") or 0)  # absent from a master before 0.3
        pushed = data.get("state")  # absent from a master on an older release
        if pushed:
            if pushed["rows"]:
                await asyncio.to_thread(state_push.merge, self.store, pushed["rows"])
            self._state = (str(pushed["token"]), int(pushed["position"]))
        if self.problem:
            log.info("following the master at %s again", self.m.master_url)
        self.problem = ""
