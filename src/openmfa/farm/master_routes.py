"""The endpoints a farm's master (or every node of a shared-database farm) serves the other
nodes: the change feed and snapshots, claims, relayed audit events, members, finalize."""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.lockout import LockoutPolicy
from ..errors import Diverged, InvalidInput, NotMaster, SnapshotNeeded
from ..store.changes import Change, ChangeWriter
from ..store.database import Store
from . import audit_relay
from .claims import CLAIM_PATH, CLAIMS_PATH, KINDS, claim_on_master, claims_on_master
from .feed import (
    MAX_BATCH,
    NodeReport,
    Reports,
    changes_since,
    make_snapshot,
    oldest_change,
)
from .follower import position
from .formats import finalize
from .routes import (
    MAX_WAIT,
    POLL_SECONDS,
    SignedEndpoints,
    _AuditBatch,
    _Claims,
    _decode,
    _json,
    _Member,
    holds,
)
from .signing import SignatureCheck
from .state_push import StateJournal


class MasterEndpoints(SignedEndpoints):
    def __init__(
        self,
        store: Store,
        checks: dict[bytes, SignatureCheck],
        lockout: LockoutPolicy,
        journal: StateJournal,
    ) -> None:
        super().__init__(store, checks)
        self.lockout = lockout
        self.reports = Reports(store)
        self.journal = journal

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
        head, _ = await run_in_threadpool(position, self.store)
        body = {
            "farm": m.farm_id,
            "epoch": m.epoch,
            "head": head,
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

    async def finalize(self, request: Request) -> Response:
        m, _ = await self._master(request)
        _, after = await run_in_threadpool(finalize, self.store, m)
        return _json({"format": after})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/farm/changes", self.changes),
            Route("/v1/farm/snapshot", self.snapshot),
            Route(CLAIM_PATH, self.claim, methods=["POST"]),
            Route(CLAIMS_PATH, self.claims, methods=["POST"]),
            Route(audit_relay.AUDIT_PATH, self.audit, methods=["POST"]),
            Route("/v1/farm/members", self.members, methods=["POST"]),
            Route("/v1/farm/finalize", self.finalize, methods=["POST"]),
        ]
