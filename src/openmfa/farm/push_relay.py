"""Push requests in a farm: they live at the master, like claims, so the phone's answer may
reach any node's mobile service. A subordinate's RADIUS flow opens a push at the master
(``POST /v1/farm/push/open``) and long-polls its outcome there (``GET /v1/farm/push/{id}``);
both are signed farm calls. The master wakes the mobile services as for its own pushes.

If the master fails over while a request is open, the request is gone with it (push requests
are not replicated: they live a minute): the waiting RADIUS request is answered Access-Reject
("the phone did not answer in time" / "unavailable"), the phone's answer is refused
(``device_refused``: no such request), and the person signs in again — on the new master.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidInput, PeerError
from ..sdk.models import PushOutcome
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store
from . import membership
from .peers import acall, refused

OPEN_PATH = "/v1/farm/push/open"
OUTCOME_PATH = "/v1/farm/push/"


class PushAsked(msgspec.Struct, forbid_unknown_fields=True):
    user: str
    method_id: str | None
    client: str
    source: str = ""
    request_id: str = ""
    numbered: bool = True


class PushOpened(msgspec.Struct, kw_only=True):
    reason: str
    id: str = ""
    number: str = ""
    expires_at: float = 0.0


class MasterPushRoutes:
    """The master's side; ``push`` and ``hub`` are the node's (set by the runtime)."""

    def __init__(self, endpoints: Any) -> None:
        self.endpoints = endpoints  # MasterEndpoints: the signature check and the role
        self.push: Any = None
        self.hub: Any = None

    async def open(self, request: Request) -> Response:
        _, node = await self.endpoints._master(request)
        try:
            asked = msgspec.json.decode(await request.body(), type=PushAsked)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"a push to open is {{user, method_id, client, …}}: {exc}") from None
        store: Store = self.endpoints.store
        client = f"{asked.client}@{node}"

        def open_here() -> tuple[Any, Any]:
            now = time.time()
            with store.write() as conn:
                d, opened = self.push.open(
                    conn,
                    asked.user,
                    asked.method_id,
                    client=client,
                    source=asked.source,
                    request_id=asked.request_id,
                    now=now,
                    numbered=asked.numbered,
                )
                event = AuditEvent(
                    "authenticate",
                    "rejected",
                    user_name=asked.user,
                    client=client,
                    method_id=d.method_id or "",
                    reason=str(d.reason),
                    request_id=asked.request_id,
                    detail=f"push {d.pending[0]} for {node}" if d.pending else f"for {node}",
                )
                conn.execute(insert(t.audit).values(event.row(store.node_name, now)))
            return d, opened

        d, opened = await run_in_threadpool(open_here)
        if opened is not None:
            self.hub.opened([opened])
        out = PushOpened(reason=str(d.reason))
        if d.pending is not None:
            out.id, out.number, out.expires_at = d.pending
        return Response(msgspec.json.encode(out), media_type="application/json")

    async def outcome(self, request: Request) -> Response:
        await self.endpoints._master(request)
        push_id = request.path_params["push_id"]
        raw = request.query_params.get("wait", "0")
        wait = min(float(raw), 60.0) if raw.isdigit() else 0.0
        outcome = await run_in_threadpool(self.push.outcome, push_id)
        if outcome.status == "pending" and wait:
            await self.hub.wait_decided(push_id, min(wait, outcome.expires_at - time.time() + 0.05))
            outcome = await run_in_threadpool(self.push.outcome, push_id)
        return Response(msgspec.json.encode(outcome), media_type="application/json")

    def routes(self) -> list[Route]:
        return [
            Route(OPEN_PATH, self.open, methods=["POST"]),
            Route(OUTCOME_PATH + "{push_id}", self.outcome, methods=["GET"]),
        ]


class MasterPush:
    """A subordinate's side: open a push at the master and wait for its outcome there."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._client: httpx.AsyncClient | None = None

    async def _call(
        self, method: str, path: str, *, body: Any = None, params: Any = None, wait: float = 0
    ) -> Any:
        m = await asyncio.to_thread(membership.load, self.store)
        if m is None or m.is_master:
            raise PeerError("this node is not a farm subordinate any more")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        try:
            resp = await asyncio.wait_for(
                acall(
                    self._client,
                    m.key,
                    self.store.node_name,
                    m.master_url,
                    method,
                    path,
                    body=body,
                    params=params,
                ),
                wait + 10.0,
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise PeerError(f"the master {m.master_url} did not answer: {exc!r}") from None
        if resp.status_code != 200:
            raise PeerError(f"the master {m.master_url} refused: {refused(resp)}")
        return resp.json()

    async def open(self, asked: PushAsked) -> PushOpened:
        data = await self._call("POST", OPEN_PATH, body=msgspec.to_builtins(asked))
        return msgspec.convert(data, type=PushOpened)

    async def outcome(self, push_id: str, wait: float) -> PushOutcome:
        data = await self._call(
            "GET", OUTCOME_PATH + push_id, params={"wait": int(max(0, wait))}, wait=wait
        )
        return msgspec.convert(data, type=PushOutcome)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
