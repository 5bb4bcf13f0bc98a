"""Push sign-in at the node: device activation, push requests, signed polls and answers.

Invariants owned here:
- an activation code is single use, expires, and is kept only as a hash;
- a push request is opened only inside the authenticator's transaction (its audit row and the
  request are one commit), at most ``[mobile] open_per_user`` at once per user and not sooner
  than ``min_gap_seconds`` after the last; the same SDK request id joins the open request;
- an answer is accepted once: the request moves from ``pending`` by one conditional update, the
  device's counter only moves forward, the nonce and the number are compared in constant time;
  every refused answer is audited with why.

The device protocol itself (canonical JSON, keys, signatures) is ``core.push``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import shlex
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
from sqlalchemy import Connection, delete, func, insert, select, update

from ..config import Config
from ..contract import (
    ActivationCode,
    DeviceActivated,
    DevicePoll,
    DeviceView,
    PushOutcome,
    PushRequestView,
    WebPushSubscription,
)
from ..core import push as proto
from ..core.verification import Decision, MethodKind, Reason
from ..errors import (
    ActivationRefused,
    Conflict,
    DeviceRefused,
    NotFound,
    NotMaster,
    PushClosed,
)
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import require
from ..store.role import read_role, role_from
from .accounts import Accounts, Actor
from .accounts import _check_text as check_text

log = logging.getLogger("openmfa.push")
CLI = Actor()

DEVICE_FORMAT = 3
"""The data format that knows push methods (``store.formats``)."""
CLOCK_SKEW = 300
"""Seconds a device's clock may be off from the node's."""
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


HANDOVER_WAIT = 10.0
"""How long a push call waits for a handover of the master's role to finish."""


class PushService:
    def __init__(self, store: Store, config: Config, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        m = config.values["mobile"]
        self.public_url = str(m["public_url"]).rstrip("/")
        self.max_devices = int(m["max_devices"])
        self.open_per_user = int(m["open_per_user"])
        self.min_gap = float(m["min_gap_seconds"])
        self.request_seconds = float(m["request_seconds"])
        self.activation_seconds = float(m["activation_seconds"])
        self.fraud_action = str(m["fraud_action"])
        self.fraud_command = str(m["fraud_command"])
        self.fraud_webhook = str(m["fraud_webhook"])
        self.writer = ChangeWriter(store)
        self.nonces = NonceBook()
        self.handover_wait = HANDOVER_WAIT

    # -- where pushes live -------------------------------------------------------------------

    def is_master(self) -> bool:
        """This node holds the farm's push requests now (the master, or a shared database's
        node); False while it hands the role over, and after."""
        return read_role(self.store).writes

    def require_master(self) -> None:
        """Push requests, their answers and activation codes live at the farm's master (like
        claims), so the phone's answer may reach any node's mobile service: a subordinate
        sends its callers there (``NotMaster`` with the master's URL; the SDK clients follow).
        While the master hands its role over (a second or so), the caller waits for the outcome
        rather than being sent back to where it is."""
        deadline = time.monotonic() + self.handover_wait
        role = read_role(self.store)
        while role.handing_over and time.monotonic() <= deadline:
            time.sleep(0.1)
            role = read_role(self.store)
        if not role.writes:
            raise NotMaster(
                f"push requests live at the farm's master; ask it at {role.master_url or '?'}",
                master_url=role.master_url,
            )

    # -- activation --------------------------------------------------------------------------

    def issue_activation(self, name: str, label: str = "", actor: Actor = CLI) -> ActivationCode:
        """A single-use code (and the URL and QR text carrying it) a device activates with; at
        the master, where the device's activation is decided."""
        self.require_master()
        now = time.time()
        label = check_text("label", label)
        user_id = self.accounts.user_id(name)
        with self.store.write() as conn:
            self._require_format(conn)
            self._room_for_a_device(conn, user_id, name)
            code = _new_code()
            conn.execute(
                insert(t.activations).values(
                    code_hash=_hash(code),
                    user_id=user_id,
                    label=label,
                    created_at=now,
                    expires_at=now + self.activation_seconds,
                )
            )
            self._audit(
                conn,
                AuditEvent(
                    "device.activation",
                    "ok",
                    user_name=name,
                    client=actor.client,
                    request_id=actor.request_id,
                ),
            )
        url = self.public_url
        return ActivationCode(
            user=name,
            code=code,
            url=url,
            expires_at=now + self.activation_seconds,
            qr_text=f"openmfa://activate?url={_quote(url)}&code={code}",
        )

    def activate(
        self,
        code: str,
        alg: str,
        public_key: str,
        label: str = "",
        webpush: dict[str, str] | None = None,
        actor: Actor = CLI,
    ) -> DeviceActivated:
        """A device's activation with its code (a write, decided at the master: a subordinate
        may not hold a code made a moment ago)."""
        self.require_master()
        try:
            key = proto.DeviceKey.load(alg, proto.unb64u(public_key))
        except proto.ProtocolError as exc:
            raise DeviceRefused(f"the device key is refused: {exc}") from None
        now = time.time()
        normalized = code.strip().upper().replace(" ", "")
        with self.store.write() as conn:
            self._require_format(conn)
            row = conn.execute(
                select(t.activations).where(t.activations.c.code_hash == _hash(normalized))
            ).first()
            if row is None or row.used_at is not None or row.expires_at <= now:
                why = "unknown" if row is None else "used" if row.used_at else "expired"
                self._audit(
                    conn,
                    AuditEvent(
                        "device.activate",
                        "rejected",
                        reason=why,
                        client=actor.client,
                        request_id=actor.request_id,
                    ),
                )
                raise ActivationRefused(
                    f"the activation code is {why}; ask for a new one "
                    "(openmfa device activate NAME, or the portal)"
                )
            conn.execute(
                update(t.activations)
                .where(t.activations.c.code_hash == row.code_hash)
                .values(used_at=now)
            )
            name = conn.scalar(select(t.users.c.name).where(t.users.c.id == row.user_id))
        if name is None:
            raise ActivationRefused("the user of this activation code was deleted")
        with self.store.read() as conn:
            self._room_for_a_device(conn, row.user_id, name)
        seed = secrets.token_bytes(20)
        method_id = "d" + secrets.token_hex(6)
        label = label or row.label or "phone"
        payload: dict[str, Any] = {
            "id": method_id,
            "user_id": row.user_id,
            "kind": str(MethodKind.PUSH),
            "label": label[:255],
            "digits": 6,
            "period": 30,
            "algorithm": "SHA1",
            "at": now,
            "secret_enc": self.store.box.seal(seed, method_id).hex(),
            "device": {
                "alg": key.alg,
                "public_key": key.spki.hex(),
                "webpush": json.dumps(webpush or {}, sort_keys=True),
            },
        }
        self.writer.commit(
            [Change("method.add", payload)],
            [
                AuditEvent(
                    "device.activate",
                    "ok",
                    user_name=name,
                    client=actor.client,
                    method_id=method_id,
                    request_id=actor.request_id,
                    detail=key.alg,
                )
            ],
        )
        return DeviceActivated(
            device_id=method_id,
            user=name,
            label=label,
            totp_secret=base64.b32encode(seed).decode().rstrip("="),
            digits=6,
            period=30,
            algorithm="SHA1",
        )

    def list_devices(self, name: str) -> list[DeviceView]:
        user_id = self.accounts.user_id(name)
        d, m = t.devices, t.methods
        with self.store.read() as conn:
            rows = conn.execute(
                select(m.c.id, m.c.label, m.c.created_at, d.c.alg, d.c.webpush)
                .join(d, d.c.method_id == m.c.id)
                .where(m.c.user_id == user_id)
                .order_by(m.c.created_at)
            ).all()
        return [
            DeviceView(
                id=r.id,
                label=r.label,
                alg=r.alg,
                created_at=r.created_at,
                webpush=bool(r.webpush and r.webpush != "{}"),
            )
            for r in rows
        ]

    def revoke(self, name: str, device_id: str, actor: Actor = CLI) -> None:
        if not any(d.id == device_id for d in self.list_devices(name)):
            raise NotFound(f"user {name!r} has no device {device_id!r}; see `openmfa device list`")
        self.accounts.remove_method(name, device_id, actor)

    def unblock(self, name: str, actor: Actor = CLI) -> bool:
        user_id = self.accounts.user_id(name)
        with self.store.write() as conn:
            gone = conn.execute(delete(t.push_blocks).where(t.push_blocks.c.user_id == user_id))
            self._audit(conn, AuditEvent("push.unblock", "ok", user_name=name, client=actor.client))
        return bool(gone.rowcount)

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
        """A push request for ``user`` (or the same caller's open one), in ``conn``'s
        transaction. Not at the master (a subordinate, or a master handing its role over): a
        pending decision with no request, which the caller opens at the master
        (``farm.push_relay``), as for a subordinate's authenticator."""
        if not role_from(conn).writes:
            return Decision(False, Reason.PENDING, method_id), None
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
        view = _view(SimpleNamespace(**row))
        opened = Opened(view, devices, {k: v for k, v in webpush.items() if v is not None})
        return _pending(method_id or devices[0], push_id, number, expires), opened

    # -- what a waiter asks -------------------------------------------------------------------

    def outcome(self, push_id: str, client: str | None = None) -> PushOutcome:
        """Where a request stands, asked of the master. ``client``: the SDK caller, who may
        only see its own."""
        self.require_master()
        return self.outcome_here(push_id, client)

    def outcome_here(self, push_id: str, client: str | None = None) -> PushOutcome:
        """Where a request stands on this node, whatever its role now: for a waiter that
        watches the role itself (``farm.push_relay.wait_outcome``)."""
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
        self.require_master()
        now = time.time()
        signed = self._signed(payload, signature, "poll")
        with self.store.read() as conn:
            device = self._device(conn, signed, now)
            if not self.nonces.first_use(signed.device_id + ":" + signed.body["nonce"], now):
                raise DeviceRefused("this poll was sent before (its nonce is used); sign a new one")
            return DevicePoll(
                device_id=signed.device_id,
                requests=self._waiting(conn, device.user_id, now),
                alg=device.alg,
                public_key=proto.b64u(bytes(device.public_key)),
            )

    def answer(self, payload: str, signature: str, actor: Actor = CLI) -> PushOutcome:
        """Record a device's signed answer. A refusal is audited (in a transaction of its own,
        since the answer's is rolled back) and raised."""
        self.require_master()
        try:
            signed = self._signed(payload, signature, "answer")
            with self.store.write() as conn:
                return self._answer(conn, signed, time.time(), actor)
        except _Refusal as refusal:
            with self.store.write() as conn:
                self._audit(conn, refusal.event)
            raise refusal.error from None

    def _answer(
        self, conn: Connection, signed: proto.Signed, now: float, actor: Actor
    ) -> PushOutcome:
        b, r = signed.body, t.push_requests

        def refuse(error: DeviceRefused | PushClosed, reason: str, user: str = "") -> _Refusal:
            return _Refusal(
                error,
                AuditEvent(
                    "push.answer",
                    "rejected",
                    user_name=user,
                    client=actor.client,
                    method_id=signed.device_id,
                    reason=reason,
                    request_id=actor.request_id,
                    detail=error.message,
                ),
            )

        try:
            device = self._device(conn, signed, now)
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
        moved = conn.execute(
            update(t.devices)
            .where(t.devices.c.method_id == signed.device_id, t.devices.c.counter < b["counter"])
            .values(counter=b["counter"])
        )
        if moved.rowcount != 1:
            raise refuse(
                DeviceRefused("the answer's counter is not above the device's last (a replay)"),
                "replay",
                user,
            )
        decision = b["decision"]
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
            .values(status=status, decided_at=now, device_id=signed.device_id)
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
                method_id=signed.device_id,
                reason=reason,
                request_id=row.request_id,
                detail=f"push {row.id} for {row.client}",
            ),
        )
        if status == "fraud":
            self._fraud(conn, row, signed.device_id, now)
            self._notify(row, signed.device_id, now)
        return PushOutcome(
            id=row.id,
            user=user,
            status=status,
            accepted=status == "accepted",
            expires_at=row.expires_at,
            decided_at=now,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _signed(self, payload: str, signature: str, op: str) -> proto.Signed:
        try:
            return proto.Signed.decode(payload, signature, op)
        except proto.ProtocolError as exc:
            raise DeviceRefused(f"the signed {op} is not well formed: {exc}") from None

    def _device(self, conn: Connection, signed: proto.Signed, now: float) -> Any:
        device = conn.execute(
            select(t.devices).where(t.devices.c.method_id == signed.device_id)
        ).first()
        if device is None:
            raise DeviceRefused("this device is not activated (or was revoked); activate it again")
        if not proto.DeviceKey(device.alg, bytes(device.public_key)).verify(
            signed.raw, signed.signature
        ):
            raise DeviceRefused("the signature does not match the device's key")
        if abs(int(signed.body["ts"]) - now) > CLOCK_SKEW:
            raise DeviceRefused(
                f"the device's clock is more than {CLOCK_SKEW} seconds off; set its time"
            )
        return device

    def _waiting(self, conn: Connection, user_id: int, now: float) -> list[PushRequestView]:
        r = t.push_requests
        rows = conn.execute(
            select(r)
            .where(r.c.user_id == user_id, r.c.status == "pending", r.c.expires_at > now)
            .order_by(r.c.created_at)
        ).all()
        return [_view(x) for x in rows]

    def _require_format(self, conn: Connection) -> None:
        require(conn, DEVICE_FORMAT, "devices")

    def _room_for_a_device(self, conn: Connection, user_id: int, name: str) -> None:
        count = conn.scalar(select(func.count()).where(t.devices.c.user_id == user_id)) or 0
        if count >= self.max_devices:
            raise Conflict(
                f"user {name!r} has {count} devices, the most [mobile] max_devices allows; "
                "revoke one first (openmfa device revoke)"
            )

    def _fraud(self, conn: Connection, row: Any, device_id: str, now: float) -> None:
        event = AuditEvent(
            "fraud.report",
            "ok",
            user_name=row.user_name,
            method_id=device_id,
            reason=self.fraud_action,
            request_id=row.request_id,
            detail=f"push {row.id} from {row.client} ({row.source or 'no address'})",
        )
        self._audit(conn, event)
        # No push for the user anywhere until an administrator looks: refuse the open ones too.
        conn.execute(
            update(t.push_requests)
            .where(t.push_requests.c.user_id == row.user_id, t.push_requests.c.status == "pending")
            .values(status="denied", decided_at=now)
        )
        if self.fraud_action == "block_push":
            conn.execute(delete(t.push_blocks).where(t.push_blocks.c.user_id == row.user_id))
            conn.execute(insert(t.push_blocks).values(user_id=row.user_id, at=now, reason="fraud"))
        elif self.fraud_action == "lock_user":
            conn.execute(
                update(t.user_state)
                .where(t.user_state.c.user_id == row.user_id)
                .values(locked_until=now + 10 * 365 * 86400)
            )

    def _notify(self, row: Any, device_id: str, now: float) -> None:
        event = json.dumps(
            {
                "event": "fraud.report",
                "user": row.user_name,
                "device_id": device_id,
                "push_id": row.id,
                "client": row.client,
                "source": row.source,
                "at": now,
                "action": self.fraud_action,
                "node": self.store.node_name,
            }
        )
        if not self.fraud_command and not self.fraud_webhook:
            return
        threading.Thread(target=self._run_hooks, args=(event,), daemon=True).start()

    def _run_hooks(self, event: str) -> None:
        if self.fraud_command:
            try:
                subprocess.run(
                    shlex.split(self.fraud_command), input=event.encode(), timeout=30, check=True
                )
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("[mobile] fraud_command failed: %s", exc)
        if self.fraud_webhook:
            try:
                httpx.post(
                    self.fraud_webhook,
                    content=event,
                    headers={"content-type": "application/json"},
                    timeout=10,
                ).raise_for_status()
            except httpx.HTTPError as exc:
                log.error("[mobile] fraud_webhook %s failed: %s", self.fraud_webhook, exc)

    def _audit(self, conn: Connection, event: AuditEvent) -> None:
        conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))


def _view(x: Any) -> PushRequestView:
    """A ``push_requests`` row as the phone sees it (never the number)."""
    return PushRequestView(
        id=x.id,
        user=x.user_name,
        client=x.client,
        source=x.source,
        created_at=x.created_at,
        expires_at=x.expires_at,
        nonce=x.nonce,
        numbered=x.number != "",
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
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _new_code() -> str:
    """16 characters of Crockford-free base32 (80 bits), easy to type from a screen."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return raw


def _hash(code: str) -> bytes:
    return hashlib.sha256(b"openmfa-activation:" + code.encode()).digest()


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
