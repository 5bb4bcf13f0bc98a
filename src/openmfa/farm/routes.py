"""What the farm's endpoints share: signed requests, request bodies, the node's hello.

``master_routes`` are what a master (or a shared-database node) serves the other nodes: the
change feed, snapshots, claims, relayed audit events, members, finalize. ``agent_routes`` are
what every node serves the orchestrator and its peers: hello, RADIUS draining, promotion and
master notices, upgrade and rollback. ``endpoints.FarmEndpoints`` puts them together."""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

import msgspec
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..errors import InvalidInput, NotFound, NotMaster
from ..store import tables as t
from ..store.database import READS_FORMATS, Store
from . import audit_relay, membership
from .agent import rollback_plan, upgrading
from .follower import fingerprint, position
from .membership import Membership, farm_format
from .signing import SignatureCheck
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
    carry: bool = False
    """The node's next process takes its open RADIUS challenges over (``radius.carry``): it
    may open new ones while draining. A release before that ignores it."""


class RadiusActivity(Protocol):
    """What a node's RADIUS server tells the rolling upgrade (``radius.service``)."""

    def set_draining(self, on: bool, carry: bool = False) -> None: ...

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
        audit_pending=m.farm_role.follows and bool(audit_relay.pending(store, 1)),
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


class SignedEndpoints:
    """Farm requests are signed with the farm key (``signing``), not sent with an API key."""

    def __init__(self, store: Store, checks: dict[bytes, SignatureCheck]) -> None:
        self.store = store
        self._checks = checks

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
        leads = m.farm_role.writes or (claims and m.farm_role.handing_over)
        if master and not leads:
            raise NotMaster(
                f"this node is not the farm's master; it is {m.master_url}",
                master_url=m.master_url,
            )
        return m, node

    async def _master(self, request: Request) -> tuple[Membership, str]:
        return await self._verified(request, master=True)
