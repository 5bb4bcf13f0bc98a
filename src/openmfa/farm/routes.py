"""The farm endpoints a master serves to its subordinates (signed with the farm key, no API key)."""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidInput, NotFound, NotMaster
from ..store.database import Store
from . import audit_relay, membership
from .claims import CLAIM_PATH, KINDS, claim_on_master
from .feed import MAX_BATCH, NodeReport, Reports, changes_since, make_snapshot
from .membership import Membership
from .signing import SignatureCheck

POLL_SECONDS = 0.2


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


class FarmEndpoints:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.reports = Reports(store)
        self._m: Membership | None = None
        self._check: SignatureCheck | None = None

    async def _master(self, request: Request) -> tuple[Membership, str]:
        """(membership, the calling node's name) for a correctly signed request to a master."""
        if self._m is None:
            self._m = await run_in_threadpool(membership.load, self.store)
            if self._m is not None:
                self._check = SignatureCheck(self._m.key)
        if self._m is None or self._check is None:
            raise NotFound("this node is not in a farm; run `openmfa farm init` on the master")
        query = request.scope.get("query_string", b"").decode("latin-1")
        target = request.scope["path"] + ("?" + query if query else "")
        node = self._check.verify(request.headers, request.method, target, await request.body())
        if not self._m.is_master:
            raise NotMaster(f"this node is not the farm's master; it is {self._m.master_url}")
        return self._m, node

    async def changes(self, request: Request) -> Response:
        m, node = await self._master(request)
        q = request.query_params
        try:
            since = int(q.get("since", "0"))
            wait = min(MAX_WAIT, max(0.0, float(q.get("wait", "0"))))
            limit = int(q.get("limit", str(MAX_BATCH)))
        except ValueError:
            raise InvalidInput("since, wait and limit must be numbers") from None
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
        deadline = time.monotonic() + wait
        while True:
            rows = await run_in_threadpool(changes_since, self.store, since, limit)
            if rows or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        body = {"farm": m.farm_id, "epoch": m.epoch, "changes": rows}
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def snapshot(self, request: Request) -> Response:
        m, _ = await self._master(request)
        blob = await run_in_threadpool(make_snapshot, self.store, m.farm_id, m.key)
        return Response(
            blob, media_type="application/octet-stream", headers={"x-omfa-epoch": str(m.epoch)}
        )

    async def claim(self, request: Request) -> Response:
        await self._master(request)
        try:
            body = msgspec.json.decode(await request.body(), type=dict[str, object])
            method_id, kind, value = body["method_id"], body["kind"], body["value"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            raise InvalidInput("a claim is {method_id, kind, value}") from None
        if not isinstance(method_id, str) or kind not in KINDS:
            raise InvalidInput(f"a claim's kind is one of {', '.join(KINDS)}")
        if not isinstance(value, int | str) or isinstance(value, bool):
            raise InvalidInput("a claim's value is a step, a counter or a code hash")
        ok = await run_in_threadpool(claim_on_master, self.store, method_id, str(kind), value)
        return Response(
            msgspec.json.encode({"result": "ok" if ok else "used"}), media_type="application/json"
        )

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

    def routes(self) -> list[Route]:
        return [
            Route("/v1/farm/changes", self.changes),
            Route("/v1/farm/snapshot", self.snapshot),
            Route(CLAIM_PATH, self.claim, methods=["POST"]),
            Route(audit_relay.AUDIT_PATH, self.audit, methods=["POST"]),
        ]
