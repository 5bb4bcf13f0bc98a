"""The farm endpoints a master serves to its subordinates (signed with the farm key, no API key)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..core.lockout import LockoutPolicy
from ..errors import Conflict, Diverged, InvalidInput, NotFound, NotMaster, SnapshotNeeded
from ..store import tables as t
from ..store.changes import Change, ChangeWriter
from ..store.database import READS_FORMATS, Store
from . import audit_relay, membership
from .agent import rollback_plan, start_rollback, start_upgrade, upgrading
from .claims import CLAIM_PATH, CLAIMS_PATH, KINDS, claim_on_master, claims_on_master
from .feed import (
    MAX_BATCH,
    NodeReport,
    Reports,
    changes_since,
    make_snapshot,
    oldest_change,
)
from .follower import fingerprint, position
from .formats import finalize
from .membership import Membership, farm_format
from .signing import SignatureCheck
from .state_push import StateJournal
from .wire import Hello, RadiusState

POLL_SECONDS = 0.05


class _AuditRow(msgspec.Struct):
    origin_id: int
    at: float
    node: str
    action: str
    user_name: str
    client: str
    method_id: str
    result: str
    reason: str
    request_id: str
    detail: str


class _AuditBatch(msgspec.Struct):
    rows: list[_AuditRow]


MAX_WAIT = 30.0
log = logging.getLogger("openmfa.farm")


class _Member(msgspec.Struct):
    name: str
    url: str


class _Epoch(msgspec.Struct):
    epoch: int


class _ClaimItem(msgspec.Struct):
    method_id: str
    kind: str
    value: int | str


class _Claims(msgspec.Struct):
    claims: list[_ClaimItem]


class _Upgrade(msgspec.Struct):
    bundle: str


class _Drain(msgspec.Struct):
    on: bool


class RadiusActivity(Protocol):
    """What a node's RADIUS server tells the rolling upgrade (``radius.service``)."""

    def set_draining(self, on: bool) -> None: ...

    def activity(self) -> RadiusState: ...


class _Master(msgspec.Struct):
    epoch: int
    master_url: str


S = TypeVar("S")


async def _decode(request: Request, kind: type[S]) -> S:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"the request body is not valid: {exc}") from None


def _json(body: object) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def describe(store: Store, m: Membership) -> Hello:
    """What ``GET /v1/farm/hello`` says of this node."""
    seq, _ = position(store)
    return Hello(
        name=store.node_name,
        role=m.role,
        epoch=m.epoch,
        master_url=m.master_url,
        url=m.self_url,
        position=seq,
        release=__version__,
        reads=[READS_FORMATS[0], READS_FORMATS[1]],
        farm_format=farm_format(store),
        data_format=store.data_format(),
        audit_pending=m.role == membership.SUBORDINATE and bool(audit_relay.pending(store, 1)),
        rollback=rollback_plan(store),
        upgrading=upgrading(store),
    )


def store_membership(store: Store, m: Membership) -> None:
    with store.write() as conn:
        membership.save(store, conn, m)


def holds(store: Store, seq: int, mark: str) -> bool:
    """Whether this node's record ``seq`` is the one the follower has (no divergence)."""
    if seq == 0:
        return True
    with store.read() as conn:
        row = conn.execute(
            select(t.changes.c.at, t.changes.c.kind).where(t.changes.c.seq == seq)
        ).first()
    return row is not None and (not mark or fingerprint(row[0], row[1]) == mark)


class FarmEndpoints:
    def __init__(self, store: Store, lockout: LockoutPolicy) -> None:
        self.store = store
        self.lockout = lockout
        self.reports = Reports(store)
        self.radius: RadiusActivity | None = None
        self.journal = StateJournal()
        self._checks: dict[bytes, SignatureCheck] = {}

    async def _verified(
        self, request: Request, *, master: bool, claims: bool = False
    ) -> tuple[Membership, str]:
        """(membership, the calling node's name) for a correctly signed farm request."""
        m = await run_in_threadpool(membership.load, self.store)
        if m is None:
            raise NotFound("this node is not in a farm; run `openmfa farm init` on the master")
        check = self._checks.setdefault(m.key, SignatureCheck(m.key))
        query = request.scope.get("query_string", b"").decode("latin-1")
        target = request.scope["path"] + ("?" + query if query else "")
        node = check.verify(request.headers, request.method, target, await request.body())
        leads = m.is_master or m.shared or (claims and m.role == membership.HANDOVER)
        if master and not leads:
            raise NotMaster(
                f"this node is not the farm's master; it is {m.master_url}",
                master_url=m.master_url,
            )
        return m, node

    async def _master(self, request: Request) -> tuple[Membership, str]:
        return await self._verified(request, master=True)

    async def changes(self, request: Request) -> Response:
        m, node = await self._master(request)
        q = request.query_params
        try:
            since = int(q.get("since", "0"))
            wait = min(MAX_WAIT, max(0.0, float(q.get("wait", "0"))))
            limit = int(q.get("limit", str(MAX_BATCH)))
            epoch = int(q.get("epoch", "0"))
        except ValueError:
            raise InvalidInput("since, wait, limit and epoch must be numbers") from None
        if epoch > m.epoch:
            raise NotMaster(
                f"this node was master of epoch {m.epoch}; the farm is at epoch {epoch}"
            )
        oldest = await run_in_threadpool(oldest_change, self.store)
        if since + 1 < oldest:
            raise SnapshotNeeded(
                f"node {node} is at change {since}; this master keeps changes from {oldest} on "
                "([farm] retain_changes): the node re-bootstraps from a snapshot"
            )
        if not await run_in_threadpool(holds, self.store, since, q.get("mark", "")):
            raise Diverged(
                f"node {node} holds change records up to {since} that this master does not "
                "have (it was a master whose last changes never reached the farm); back it "
                "up and run `openmfa farm join` on it again"
            )
        client = request.client
        report = NodeReport(
            node,
            q.get("release", "?")[:40],
            q.get("reads", "?")[:20],
            since,
            time.time(),
            client.host if client else "",
        )
        await run_in_threadpool(self.reports.record, report)
        state_token, state_since = q.get("state_token", ""), int(q.get("state_since", "0") or 0)
        deadline = time.monotonic() + wait
        while True:
            rows = await run_in_threadpool(changes_since, self.store, since, limit)
            if rows or self.journal.news(state_token, state_since, node):
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        body = {
            "farm": m.farm_id,
            "epoch": m.epoch,
            "changes": rows,
            "state": self.journal.since(state_token, state_since, node),
        }
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def snapshot(self, request: Request) -> Response:
        m, _ = await self._master(request)
        blob = await run_in_threadpool(make_snapshot, self.store, m.farm_id, m.key)
        return Response(
            blob, media_type="application/octet-stream", headers={"x-omfa-epoch": str(m.epoch)}
        )

    async def claim(self, request: Request) -> Response:
        # A master handing over stays the authority for claims until the new master leads.
        _, node = await self._verified(request, master=True, claims=True)
        try:
            body = msgspec.json.decode(await request.body(), type=dict[str, object])
            method_id, kind, value = body["method_id"], body["kind"], body["value"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            raise InvalidInput("a claim is {method_id, kind, value}") from None
        if not isinstance(method_id, str) or kind not in KINDS:
            raise InvalidInput(f"a claim's kind is one of {', '.join(KINDS)}")
        if not isinstance(value, int | str) or isinstance(value, bool):
            raise InvalidInput("a claim's value is a step, a counter or a code hash")
        result = await run_in_threadpool(
            claim_on_master, self.store, self.lockout, method_id, str(kind), value
        )
        if result == "ok" and kind in ("totp", "hotp"):
            self.journal.note([(method_id, str(kind), int(value))], node)
        return Response(msgspec.json.encode({"result": result}), media_type="application/json")

    async def audit(self, request: Request) -> Response:
        _, node = await self._master(request)
        try:
            rows = msgspec.json.decode(await request.body(), type=_AuditBatch).rows
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"an audit batch is {{rows: [...]}}: {exc}") from None
        through = await run_in_threadpool(
            audit_relay.receive, self.store, node, [msgspec.to_builtins(r) for r in rows]
        )
        return Response(msgspec.json.encode({"through": through}), media_type="application/json")

    async def members(self, request: Request) -> Response:
        await self._master(request)
        try:
            body = msgspec.json.decode(await request.body(), type=_Member)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"a member is {{name, url}}: {exc}") from None
        change = Change("farm.member", {"name": body.name, "url": body.url})
        await run_in_threadpool(ChangeWriter(self.store).commit, [change])
        return _json({"ok": True})

    async def hello(self, request: Request) -> Response:
        m, _ = await self._verified(request, master=False)
        said = await run_in_threadpool(describe, self.store, m)
        if self.radius is not None:
            said.radius = self.radius.activity()
        return _json(said)

    async def drain(self, request: Request) -> Response:
        """Stop (or resume) taking new RADIUS sign-ins; challenges already open still finish.

        A draining node drops new Access-Requests and Status-Server unanswered, which is how
        RADIUS clients learn to use their next server (RFC 2865 §2.4 retransmission)."""
        _, node = await self._verified(request, master=False)
        body = await _decode(request, _Drain)
        if self.radius is None:
            return _json({"radius": None})
        self.radius.set_draining(body.on)
        log.warning("RADIUS %s, as asked by %s", "draining" if body.on else "back", node)
        return _json({"radius": self.radius.activity()})

    async def promote(self, request: Request) -> Response:
        """Become the master of a new, higher epoch (sent by ``farm promote``)."""
        m, node = await self._verified(request, master=False)
        body = await _decode(request, _Epoch)
        if body.epoch <= m.epoch:
            raise Conflict(f"epoch {body.epoch} is not newer than this node's {m.epoch}")
        promoted = m.with_master(body.epoch, m.self_url)
        await run_in_threadpool(store_membership, self.store, promoted)
        log.warning("promoted to master of epoch %d by %s", body.epoch, node)
        return _json(await run_in_threadpool(describe, self.store, promoted))

    async def master_notice(self, request: Request) -> Response:
        """The farm has a new master (sent by the node that made the promotion)."""
        m, node = await self._verified(request, master=False)
        body = await _decode(request, _Master)
        if body.epoch > m.epoch:
            now = m.with_master(body.epoch, body.master_url)
            await run_in_threadpool(store_membership, self.store, now)
            log.warning(
                "the farm's master is now %s (epoch %d; told by %s)",
                body.master_url,
                body.epoch,
                node,
            )
            m = now
        return _json(await run_in_threadpool(describe, self.store, m))

    async def upgrade(self, request: Request) -> Response:
        """Upgrade this node from a bundle on its host (sent by ``farm upgrade``)."""
        _, node = await self._verified(request, master=False)
        body = await _decode(request, _Upgrade)
        started = await run_in_threadpool(start_upgrade, self.store, Path(body.bundle))
        log.warning("upgrading from %s as asked by %s (pid %s)", body.bundle, node, started["pid"])
        return _json(started)

    async def rollback(self, request: Request) -> Response:
        """Go back to the release before the last upgrade (sent by ``farm rollback``)."""
        _, node = await self._verified(request, master=False)
        started = await run_in_threadpool(start_rollback, self.store)
        log.warning(
            "rolling back to %s as asked by %s (pid %s)", started["to"], node, started["pid"]
        )
        return _json(started)

    async def finalize(self, request: Request) -> Response:
        m, _ = await self._master(request)
        _, after = await run_in_threadpool(finalize, self.store, m)
        return _json({"format": after})

    async def claims(self, request: Request) -> Response:
        _, node = await self._verified(request, master=True, claims=True)
        body = await _decode(request, _Claims)
        for c in body.claims:
            if c.kind not in KINDS:
                raise InvalidInput(f"a claim's kind is one of {', '.join(KINDS)}")
        wanted = [(c.method_id, c.kind, c.value) for c in body.claims]
        done = await run_in_threadpool(claims_on_master, self.store, self.lockout, wanted)
        self.journal.note(
            (
                (str(mid), str(kind), int(value))
                for (mid, kind, value), result in zip(wanted, done, strict=True)
                if result == "ok" and kind in ("totp", "hotp")
            ),
            node,
        )
        return _json({"results": done})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/farm/changes", self.changes),
            Route("/v1/farm/snapshot", self.snapshot),
            Route(CLAIM_PATH, self.claim, methods=["POST"]),
            Route(CLAIMS_PATH, self.claims, methods=["POST"]),
            Route(audit_relay.AUDIT_PATH, self.audit, methods=["POST"]),
            Route("/v1/farm/members", self.members, methods=["POST"]),
            Route("/v1/farm/hello", self.hello),
            Route("/v1/farm/promote", self.promote, methods=["POST"]),
            Route("/v1/farm/master", self.master_notice, methods=["POST"]),
            Route("/v1/farm/upgrade", self.upgrade, methods=["POST"]),
            Route("/v1/farm/rollback", self.rollback, methods=["POST"]),
            Route("/v1/farm/drain", self.drain, methods=["POST"]),
            Route("/v1/farm/finalize", self.finalize, methods=["POST"]),
        ]
