"""Push requests in a farm: they live at the master, like claims, so the phone's answer may
reach any node's mobile service. A subordinate's RADIUS flow opens a push at the master
(``POST /v1/farm/push/open``) and long-polls its outcome there (``GET /v1/farm/push/{id}``);
both are signed farm calls. The master wakes the mobile services as for its own pushes.

Push requests are not replicated (they live a minute). A planned handover (``farm promote``,
and so every ``farm upgrade``) hands the open ones to the new master (``POST
/v1/farm/push/adopt``) after it has every change and before it is promoted, so they are answered
there — and the ones answered in the last ``DECIDED_CARRIED`` seconds too (``POST
/v1/farm/push/adopt-decided``), so a caller that asks for the outcome of a push answered just
before the handover gets it from the new master instead of "no such request". Waiters on the
old master (an SDK long-poll, a held RADIUS request, a subordinate's long-poll) notice within
``MASTER_CHECK`` seconds that it no longer leads and ask the new one.
If the master fails over (it is lost), its open requests are gone with it: the waiting RADIUS
request is answered Access-Reject ("unavailable"), the phone stops showing the request, its
late answer is refused, and the person signs in again — on the new master.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec
from sqlalchemy import insert, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..contract import PushOutcome
from ..errors import InvalidInput, PeerError
from ..node.push import PushService
from ..node.push_hub import PushHub
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store
from ..store.role import read_role
from . import membership
from .peers import acall, refused

OPEN_PATH = "/v1/farm/push/open"
OUTCOME_PATH = "/v1/farm/push/"
ADOPT_PATH = "/v1/farm/push/adopt"
DECIDED_PATH = "/v1/farm/push/adopt-decided"
"""Separate from ``ADOPT_PATH``: a release before it adopts everything it gets as open."""
DECIDED_CARRIED = 120.0
MASTER_CHECK = 2.0
"""How often a waiter on the master checks that it still leads (a handover moves pushes)."""
CARRIED = ("id", "user_name", "method_id", "number", "nonce", "client", "source", "request_id",
           "created_at", "expires_at")  # fmt: skip


def open_requests(store: Store, now: float) -> list[dict[str, Any]]:
    """The master's open push requests, as a handover carries them."""
    r = t.push_requests
    with store.read() as conn:
        rows = conn.execute(
            select(*(r.c[c] for c in CARRIED)).where(r.c.status == "pending", r.c.expires_at > now)
        ).all()
    return [dict(row._mapping) for row in rows]


def decided_requests(store: Store, now: float) -> list[dict[str, Any]]:
    """The master's push requests answered (or refused, expired) in the last
    ``DECIDED_CARRIED`` seconds: their callers may not have read the outcome yet."""
    r = t.push_requests
    with store.read() as conn:
        rows = conn.execute(
            select(*(r.c[c] for c in (*CARRIED, "status", "decided_at", "collected_at"))).where(
                r.c.status != "pending", r.c.decided_at > now - DECIDED_CARRIED
            )
        ).all()
    return [dict(row._mapping) for row in rows]


def adopt(store: Store, requests: list[dict[str, Any]]) -> int:
    """Take over open push requests from a master handing over (users by name: their ids are
    this node's); returns how many were new here."""
    r = t.push_requests
    taken = 0
    with store.write() as conn:
        for req in requests:
            if conn.scalar(select(r.c.id).where(r.c.id == req["id"])) is not None:
                continue
            user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == req["user_name"]))
            if user_id is None:
                continue  # the user was removed meanwhile: the request cannot be answered
            row = {c: req[c] for c in CARRIED}
            conn.execute(insert(r).values(**row, user_id=user_id, status="pending"))
            taken += 1
    return taken


def adopt_decided(store: Store, requests: list[dict[str, Any]]) -> int:
    """Take over requests the old master decided a moment ago, with their outcome (final:
    never opened again here) and whether a portal collected it already (``collected_at``;
    absent from a release before it: not collected); returns how many were new here."""
    r = t.push_requests
    taken = 0
    with store.write() as conn:
        for req in requests:
            status = str(req["status"])
            if status == "pending" or not isinstance(req["decided_at"], int | float):
                raise TypeError("status: a decided request's")
            if conn.scalar(select(r.c.id).where(r.c.id == req["id"])) is not None:
                continue
            user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == req["user_name"]))
            if user_id is None:
                continue
            row = {c: req[c] for c in CARRIED}
            collected = req.get("collected_at")
            conn.execute(
                insert(r).values(
                    **row,
                    user_id=user_id,
                    status=status,
                    decided_at=float(req["decided_at"]),
                    collected_at=float(collected) if isinstance(collected, int | float) else None,
                )
            )
            taken += 1
    return taken


def leads(store: Store) -> bool:
    """Whether this node is (still) where push requests live (during a handover, until the
    new master has taken them)."""
    return read_role(store).leads_pushes


class HandingOver(PeerError):
    """The master is handing its role over right now (a second or so): ask again."""


class _Adopt(msgspec.Struct, forbid_unknown_fields=True):
    requests: list[dict[str, Any]]


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
    """The master's side; ``push`` and ``hub`` are the node's push requests and their waiters."""

    def __init__(self, endpoints: Any, push: PushService, hub: PushHub) -> None:
        self.endpoints = endpoints  # MasterEndpoints: the signature check and the role
        self.push = push
        self.hub = hub

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
        """A pending outcome comes back early when this node handed the master's role over
        meanwhile: the caller asks again, at the new master."""
        await self.endpoints._master(request)
        push_id = request.path_params["push_id"]
        raw = request.query_params.get("wait", "0")
        wait = min(float(raw), 60.0) if raw.isascii() and raw.isdigit() and len(raw) < 9 else 0.0
        outcome = await wait_outcome(self.push, self.hub, self.endpoints.store, push_id, wait)
        return Response(msgspec.json.encode(outcome), media_type="application/json")

    async def adopt(self, request: Request) -> Response:
        """Open push requests handed over by the master, just before this node is promoted."""
        return await self._adopt(request, adopt)

    async def adopt_decided(self, request: Request) -> Response:
        """Push requests the master decided a moment ago, handed over with the open ones."""
        return await self._adopt(request, adopt_decided)

    async def _adopt(self, request: Request, how: Any) -> Response:
        await self.endpoints._verified(request, master=False)
        try:
            body = msgspec.json.decode(await request.body(), type=_Adopt)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"push requests to adopt are {{requests: [...]}}: {exc}") from None
        try:
            taken = await run_in_threadpool(how, self.endpoints.store, body.requests)
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"a push request to adopt lacks {exc}") from None
        return Response(msgspec.json.encode({"adopted": taken}), media_type="application/json")

    def routes(self) -> list[Route]:
        return [
            Route(OPEN_PATH, self.open, methods=["POST"]),
            Route(ADOPT_PATH, self.adopt, methods=["POST"]),
            Route(DECIDED_PATH, self.adopt_decided, methods=["POST"]),
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
        master = m.master_url
        for _ in range(2):  # the master this node knows may have just handed over: follow it
            try:
                resp = await asyncio.wait_for(
                    acall(
                        self._client,
                        m.key,
                        self.store.node_name,
                        master,
                        method,
                        path,
                        body=body,
                        params=params,
                    ),
                    wait + 10.0,
                )
            except (httpx.HTTPError, TimeoutError) as exc:
                raise PeerError(f"the master {master} did not answer: {exc!r}") from None
            moved = _moved_to(resp)
            if moved == master:
                raise HandingOver(f"the master {master} is handing its role over; ask again")
            if not moved:
                break
            master = moved
        if resp.status_code != 200:
            raise PeerError(f"the master {master} refused: {refused(resp)}")
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


def _moved_to(resp: httpx.Response) -> str:
    """The new master a former one names (409 not_master), or ""."""
    if resp.status_code != 409:
        return ""
    try:
        body = resp.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("code") != "not_master":
        return ""
    return str(body.get("master_url") or "")


async def wait_outcome(push: Any, hub: Any, store: Store, push_id: str, wait: float) -> PushOutcome:
    """A push's outcome on this (master) node, waiting up to ``wait`` seconds while it is
    pending; returns early, still pending, when this node stops leading (a handover)."""
    outcome: PushOutcome = await run_in_threadpool(push.outcome_here, push_id)
    deadline = time.monotonic() + wait
    while outcome.status == "pending":
        left = min(deadline - time.monotonic(), outcome.expires_at - time.time() + 0.05)
        if left <= 0:
            break
        await hub.wait_decided(push_id, min(left, MASTER_CHECK))
        outcome = await run_in_threadpool(push.outcome_here, push_id)
        if outcome.status == "pending" and not await run_in_threadpool(leads, store):
            break
    return outcome
