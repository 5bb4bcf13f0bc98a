"""Push requests at the node: opened, polled by the devices, answered once, read back.

Invariants owned here:
- a push request is opened only inside the authenticator's transaction (its audit row and the
  request are one commit), at most ``[mobile] open_per_user`` at once per user and not sooner
  than ``min_gap_seconds`` after the last; the same SDK request id joins the open request;
- a signed poll is single use (its nonce, for ``CLOCK_SKEW`` seconds);
- an answer is accepted once: the request moves from ``pending`` by one conditional update, the
  device's counter only moves forward, the nonce and the number are compared in constant time;
  every refused answer is audited with why;
- where approvals need the phone's screen lock (``[mobile] require_unlock``), an approval
  without an assertion that verifies (``push_unlock``) is refused and the request stays pending
  (the counter does not move): the person approves again and unlocks. A denial or a fraud
  report never needs it.

An approved request is *collected* at most once (``collect``: one conditional update of
``collected_at``), and only by a sign-in begun before it was opened: the portal's sign-in
(``portal_sign_in``) turns it into one session, never a second. Push requests live at the
farm's master only and are not replicated, so neither is ``collected_at``.

A request expires (``pending`` past ``expires_at`` reads as ``expired``), or is closed as
expired when nobody waits for its answer any more (``close``: the node holding a RADIUS request
for it stops); either way the devices no longer show it and an answer to it is refused. A fraud
answer is ``push_fraud``'s to act on.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import Connection, func, insert, select, update

from ..config import Config
from ..contract import DevicePoll, PushOutcome, PushRequestView, WebPushSubscription
from ..core import push as proto
from ..core.verification import Decision, Reason
from ..errors import DeviceRefused, NotFound, PushClosed, UnlockRefused
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store
from .accounts import Actor
from .push_devices import CLOCK_SKEW, signed, verified
from .push_fraud import FraudHooks
from .push_unlock import UnlockParty

CLI = Actor()
ENDED = ("accepted", "denied", "fraud", "expired")


@dataclass(frozen=True, slots=True)
class Opened:
    """A push request just committed: what the mobile service needs to wake the devices."""

    request: PushRequestView
    devices: list[str]
    webpush: dict[str, WebPushSubscription]


class NonceBook:
    """Poll nonces seen in the last ``CLOCK_SKEW`` seconds (a signed poll is single use)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def first_use(self, key: str, now: float) -> bool:
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - 2 * CLOCK_SKEW
                or len(self._seen) > self._limit
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


class PushRequests:
    """The requests' life; unguarded (``PushService`` asks the role first)."""

    def __init__(self, store: Store, config: Config, fraud: FraudHooks) -> None:
        self.store = store
        self.fraud = fraud
        m = config.values["mobile"]
        self.open_per_user = int(m["open_per_user"])
        self.min_gap = float(m["min_gap_seconds"])
        self.request_seconds = float(m["request_seconds"])
        self.unlock = UnlockParty.of(config)
        self.nonces = NonceBook()

    # -- opening a request (inside the authenticator's transaction) ---------------------------

    def open(
        self,
        conn: Connection,
        user: str,
        method_id: str | None,
        *,
        client: str,
        source: str,
        request_id: str,
        now: float,
        numbered: bool = True,
    ) -> tuple[Decision, Opened | None]:
        r = t.push_requests
        user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == user))
        if user_id is None:
            return Decision(False, Reason.UNKNOWN_USER), None
        if conn.scalar(select(t.push_blocks.c.at).where(t.push_blocks.c.user_id == user_id)):
            return Decision(False, Reason.PUSH_BLOCKED, method_id), None
        live = (r.c.user_id == user_id, r.c.status == "pending", r.c.expires_at > now)
        if request_id:  # the same caller's request id (another's may collide with it)
            same = conn.execute(
                select(r).where(*live, r.c.request_id == request_id, r.c.client == client[:255])
            ).first()
            if same is not None:  # a retransmission: join it, no second push
                return _pending(same.method_id, same.id, same.number, same.expires_at), None
        open_now = conn.scalar(select(func.count()).where(*live)) or 0
        last = conn.scalar(select(func.max(r.c.created_at)).where(r.c.user_id == user_id))
        if open_now >= self.open_per_user or (last is not None and now - last < self.min_gap):
            return Decision(False, Reason.PUSH_LIMITED, method_id), None
        rows = conn.execute(
            select(t.devices.c.method_id, t.devices.c.webpush).where(t.devices.c.user_id == user_id)
        ).all()
        devices = [r.method_id for r in rows]
        webpush = {
            r.method_id: _subscription(r.webpush) for r in rows if r.webpush not in ("", "{}")
        }
        if not devices:
            return Decision(False, Reason.NO_METHOD), None
        push_id = "p" + secrets.token_hex(16)
        number, nonce = proto.new_number() if numbered else "", proto.new_nonce()
        expires = now + self.request_seconds
        row = {
            "id": push_id,
            "user_id": user_id,
            "user_name": user,
            "method_id": method_id or devices[0],
            "number": number,
            "nonce": nonce,
            "client": client[:255],
            "source": source[:64],
            "request_id": request_id[:64],
            "created_at": now,
            "expires_at": expires,
            "status": "pending",
        }
        conn.execute(insert(r).values(row))
        view = _view(SimpleNamespace(**row), self.unlock.required)
        opened = Opened(view, devices, {k: v for k, v in webpush.items() if v is not None})
        return _pending(method_id or devices[0], push_id, number, expires), opened

    # -- what a waiter asks -------------------------------------------------------------------

    def outcome(self, push_id: str, client: str | None = None) -> PushOutcome:
        """Where a request stands. ``client``: the SDK caller, who may only see its own."""
        with self.store.read() as conn:
            row = conn.execute(
                select(t.push_requests).where(t.push_requests.c.id == push_id)
            ).first()
        if row is None or (client is not None and row.client != client):
            raise NotFound(f"there is no push request {push_id!r} of this caller")
        status = row.status
        if status == "pending" and row.expires_at <= time.time():
            status = "expired"
        return PushOutcome(
            id=row.id,
            user=row.user_name,
            status=status,
            accepted=status == "accepted",
            expires_at=row.expires_at,
            decided_at=row.decided_at,
        )

    def collect(self, push_id: str, not_before: float, now: float) -> float | None:
        """Take an approved request's approval, once: when the phone approved it, or None
        when it is not approved, was opened before ``not_before`` (a sign-in begun after
        it), or was collected before."""
        r = t.push_requests
        with self.store.write() as conn:
            done = conn.execute(
                update(r)
                .where(
                    r.c.id == push_id,
                    r.c.status == "accepted",
                    r.c.collected_at.is_(None),
                    r.c.created_at >= not_before,
                )
                .values(collected_at=now)
            )
            if done.rowcount != 1:
                return None
            decided = conn.scalar(select(r.c.decided_at).where(r.c.id == push_id))
        return float(decided) if decided is not None else now

    def number(self, push_id: str) -> str:
        """The number a pending request shows (to show it again)."""
        with self.store.read() as conn:
            number = conn.scalar(
                select(t.push_requests.c.number).where(t.push_requests.c.id == push_id)
            )
        if number is None:
            raise NotFound(f"there is no push request {push_id!r}")
        return str(number)

    # -- the device's side --------------------------------------------------------------------

    def poll(self, payload: str, signature: str) -> DevicePoll:
        """A signed poll: the device, its key, and the requests waiting for its user."""
        now = time.time()
        message = signed(payload, signature, "poll")
        with self.store.read() as conn:
            device = verified(conn, message, now)
            if not self.nonces.first_use(message.device_id + ":" + message.body["nonce"], now):
                raise DeviceRefused("this poll was sent before (its nonce is used); sign a new one")
            return DevicePoll(
                device_id=message.device_id,
                requests=self._waiting(conn, device.user_id, now),
                alg=device.alg,
                public_key=proto.b64u(bytes(device.public_key)),
            )

    def answer(
        self, payload: str, signature: str, actor: Actor = CLI, unlock: str = ""
    ) -> PushOutcome:
        """Record a device's signed answer (``unlock``: the screen lock's assertion, which an
        approval needs where the node requires it). A refusal is audited (in a transaction of
        its own, since the answer's is rolled back) and raised."""
        try:
            message = signed(payload, signature, "answer")
            with self.store.write() as conn:
                return self._answer(conn, message, time.time(), actor, unlock)
        except _Refusal as refusal:
            with self.store.write() as conn:
                self._audit(conn, refusal.event)
            raise refusal.error from None

    def _answer(
        self, conn: Connection, message: proto.Signed, now: float, actor: Actor, unlock: str
    ) -> PushOutcome:
        b, r = message.body, t.push_requests

        def refuse(error: DeviceRefused | PushClosed, reason: str, user: str = "") -> _Refusal:
            return _Refusal(
                error,
                AuditEvent(
                    "push.answer",
                    "rejected",
                    user_name=user,
                    client=actor.client,
                    method_id=message.device_id,
                    reason=reason,
                    request_id=actor.request_id,
                    detail=error.message,
                ),
            )

        try:
            device = verified(conn, message, now)
        except DeviceRefused as exc:
            raise refuse(exc, "device") from None
        row = conn.execute(select(r).where(r.c.id == b["request_id"])).first()
        if row is None or row.user_id != device.user_id:
            raise refuse(DeviceRefused("there is no such push request for this device"), "request")
        user = row.user_name
        if not proto.same(row.nonce, b["nonce"]):
            raise refuse(DeviceRefused("the nonce is not this request's"), "nonce", user)
        if row.status != "pending" or row.expires_at <= now:
            why = "expired" if row.status == "pending" else f"already {row.status}"
            raise refuse(PushClosed(f"the push request is {why}; sign in again"), "closed", user)
        decision = b["decision"]
        if decision == "approve" and self.unlock.required:
            why_not = self.unlock.refusal(device.unlock, unlock, row.nonce)
            if why_not is not None:  # rolled back: still pending, the counter where it was
                raise refuse(UnlockRefused(why_not), "unlock", user)
        moved = conn.execute(
            update(t.devices)
            .where(t.devices.c.method_id == message.device_id, t.devices.c.counter < b["counter"])
            .values(counter=b["counter"])
        )
        if moved.rowcount != 1:
            raise refuse(
                DeviceRefused("the answer's counter is not above the device's last (a replay)"),
                "replay",
                user,
            )
        if decision == "approve":
            good = proto.same(row.number, b["number"])
            status, reason = ("accepted", "approved") if good else ("denied", "wrong_number")
        elif decision == "deny":
            status, reason = "denied", "declined"
        else:
            status, reason = "fraud", "fraud"
        done = conn.execute(
            update(r)
            .where(r.c.id == row.id, r.c.status == "pending")
            .values(status=status, decided_at=now, device_id=message.device_id)
        )
        if done.rowcount != 1:
            raise refuse(PushClosed("the push request was answered a moment ago"), "closed", user)
        self._audit(
            conn,
            AuditEvent(
                "push.answer",
                "accepted" if status == "accepted" else "rejected",
                user_name=user,
                client=actor.client,
                method_id=message.device_id,
                reason=reason,
                request_id=row.request_id,
                detail=push_detail(row.id, row.client),
            ),
        )
        if status == "fraud":
            self.fraud.report(conn, row, message.device_id, now)
        return PushOutcome(
            id=row.id,
            user=user,
            status=status,
            accepted=status == "accepted",
            expires_at=row.expires_at,
            decided_at=now,
        )

    def close(self, push_id: str, reason: str) -> bool:
        """End a pending request nobody waits for any more: it is ``expired`` from now on, and
        audited (``push.close`` with ``reason``). False when it was answered (or ended) first:
        one conditional update decides, as for an answer."""
        r, now = t.push_requests, time.time()
        with self.store.write() as conn:
            row = conn.execute(select(r).where(r.c.id == push_id)).first()
            if row is None:
                return False
            done = conn.execute(
                update(r)
                .where(r.c.id == push_id, r.c.status == "pending")
                .values(status="expired", decided_at=now)
            )
            if done.rowcount != 1:
                return False
            self._audit(
                conn,
                AuditEvent(
                    "push.close",
                    "ok",
                    user_name=row.user_name,
                    client=row.client,
                    method_id=row.method_id,
                    reason=reason,
                    request_id=row.request_id,
                    detail=push_detail(row.id, row.client),
                ),
            )
        return True

    def _waiting(self, conn: Connection, user_id: int, now: float) -> list[PushRequestView]:
        r = t.push_requests
        rows = conn.execute(
            select(r)
            .where(r.c.user_id == user_id, r.c.status == "pending", r.c.expires_at > now)
            .order_by(r.c.created_at)
        ).all()
        return [_view(x, self.unlock.required) for x in rows]

    def _audit(self, conn: Connection, event: AuditEvent) -> None:
        conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))


def push_detail(push_id: str, client: str) -> str:
    """The ``detail`` of a push's audit rows (``push.answer``, ``push.close``)."""
    return f"push {push_id} for {client}"


def push_parts(detail: str) -> tuple[str, str]:
    """(push request, client that asked for it) of a ``push_detail`` (("", "") otherwise)."""
    head, _, rest = detail.partition(" ")
    push_id, sep, client = rest.partition(" for ")
    return (push_id, client) if head == "push" and sep else ("", "")


def _view(x: Any, unlock: bool) -> PushRequestView:
    """A ``push_requests`` row as the phone sees it (never the number); ``unlock``: an approval
    needs the screen lock."""
    return PushRequestView(
        id=x.id,
        user=x.user_name,
        client=x.client,
        source=x.source,
        created_at=x.created_at,
        expires_at=x.expires_at,
        nonce=x.nonce,
        numbered=x.number != "",
        unlock=unlock,
    )


class _Refusal(Exception):
    def __init__(self, error: DeviceRefused | PushClosed, event: AuditEvent) -> None:
        self.error, self.event = error, event


def _pending(method_id: str, push_id: str, number: str, expires: float) -> Decision:
    return Decision(
        False,
        Reason.PENDING,
        method_id=method_id,
        pending=(push_id, number, expires),
    )


def _subscription(text: str) -> WebPushSubscription | None:
    try:
        return msgspec.json.decode(text, type=WebPushSubscription)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
