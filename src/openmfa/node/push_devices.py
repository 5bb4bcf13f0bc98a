"""Push devices at the node: activation codes, device records and the keys that sign.

Invariants owned here:
- an activation code is single use, expires, and is kept only as a hash;
- a user has at most ``[mobile] max_devices`` devices;
- a device is a push method (``method.add`` through the change writer, so it replicates and is
  audited), its public key recorded at activation; every message it signs later is checked
  against that key and the node's clock (``verified``);
- where approvals need the phone's screen lock (``[mobile] require_unlock``), a device is
  activated only with a screen-lock credential that verifies (``push_unlock``); an activation
  without one is refused (``unlock_required``) before its code is used, and so is one whose
  credential does not verify (audited), so the app can try again with the same code.

The device protocol itself (canonical JSON, keys, signatures) is ``core.push``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ..config import Config
from ..contract import ActivationCode, DeviceActivated, DeviceView
from ..core import push as proto
from ..core.verification import MethodKind
from ..errors import (
    ActivationRefused,
    Conflict,
    DeviceClockOff,
    DeviceRefused,
    NotFound,
    UnlockRequired,
)
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import UNLOCK_FORMAT, require
from .accounts import Accounts, Actor
from .accounts import _check_text as check_text
from .push_unlock import UnlockParty, normalized_code

CLI = Actor()
DEVICE_FORMAT = 3
"""The data format that knows push methods (``store.formats``)."""
CLOCK_SKEW = 300
"""Seconds a device's clock may be off from the node's."""


class PushDevices:
    """Activation and the device records; unguarded (``PushService`` asks the role first)."""

    def __init__(self, store: Store, config: Config, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        m = config.values["mobile"]
        self.public_url = str(m["public_url"]).rstrip("/")
        self.max_devices = int(m["max_devices"])
        self.activation_seconds = float(m["activation_seconds"])
        self.unlock = UnlockParty.of(config)
        self.writer = ChangeWriter(store)

    # -- activation --------------------------------------------------------------------------

    def issue_activation(self, name: str, label: str = "", actor: Actor = CLI) -> ActivationCode:
        """A single-use code (and the URL and QR text carrying it) a device activates with."""
        now = time.time()
        label = check_text("label", label)
        user_id = self.accounts.user_id(name)
        with self.store.write() as conn:
            require(conn, DEVICE_FORMAT, "devices")
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
            _audit(
                self.store,
                conn,
                AuditEvent(
                    "device.activation",
                    "ok",
                    user_name=name,
                    client=actor.client,
                    request_id=actor.request_id,
                    source_enc=actor.origin.sealed(self.store.box, name),
                ),
            )
        url = self.public_url
        return ActivationCode(
            user=name,
            code=code,
            url=url,
            expires_at=now + self.activation_seconds,
            qr_text=f"{url}/app/#activate={code}",
        )

    def activate(
        self,
        code: str,
        alg: str,
        public_key: str,
        label: str = "",
        webpush: dict[str, str] | None = None,
        actor: Actor = CLI,
        unlock: str = "",
    ) -> DeviceActivated:
        """A device's activation with its code: the code used up, the device a push method.
        ``unlock``: its screen-lock credential's registration (``push_unlock``), needed where
        approvals need the screen lock."""
        try:
            key = proto.DeviceKey.load(alg, proto.unb64u(public_key))
        except proto.ProtocolError as exc:
            raise DeviceRefused(f"the device key is refused: {exc}") from None
        now = time.time()
        normalized = normalized_code(code)
        refused, unlocked = "", ""
        unlock_error: DeviceRefused | None = None
        name: str | None = None
        with self.store.write() as conn:
            require(conn, DEVICE_FORMAT, "devices")
            row = conn.execute(
                select(t.activations).where(t.activations.c.code_hash == _hash(normalized))
            ).first()
            if row is None or row.used_at is not None or row.expires_at <= now:
                refused = "unknown" if row is None else "used" if row.used_at else "expired"
            elif unlock:
                require(conn, UNLOCK_FORMAT, "screen-lock approvals ([mobile] require_unlock)")
                try:
                    unlocked = self.unlock.registered(unlock, normalized)
                except DeviceRefused as exc:  # the code stays good: the app may try again
                    refused, unlock_error = "unlock", exc
            elif self.unlock.required:  # the code stays good: the app registers, then again
                raise UnlockRequired(
                    "approvals on this server need the phone's screen lock: register it (the "
                    "OpenMFA Authenticator asks) and activate again with the same code"
                )
            if refused or row is None:
                # Recorded in this transaction, which commits: the refusal is raised after it.
                _audit(
                    self.store,
                    conn,
                    AuditEvent(
                        "device.activate",
                        "rejected",
                        reason=refused,
                        client=actor.client,
                        request_id=actor.request_id,
                        detail=unlock_error.message if unlock_error is not None else "",
                    ),
                )
            else:
                conn.execute(
                    update(t.activations)
                    .where(t.activations.c.code_hash == row.code_hash)
                    .values(used_at=now)
                )
                name = conn.scalar(select(t.users.c.name).where(t.users.c.id == row.user_id))
        if unlock_error is not None:
            raise unlock_error
        if refused or row is None:
            raise ActivationRefused(
                f"the activation code is {refused}; ask for a new one "
                "(openmfa device activate NAME, or the portal)"
            )
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
        if unlocked:  # data format 7 (required above)
            payload["device"]["unlock"] = unlocked
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

    # -- the records -------------------------------------------------------------------------

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

    def _room_for_a_device(self, conn: Connection, user_id: int, name: str) -> None:
        count = conn.scalar(select(func.count()).where(t.devices.c.user_id == user_id)) or 0
        if count >= self.max_devices:
            raise Conflict(
                f"user {name!r} has {count} devices, the most [mobile] max_devices allows; "
                "revoke one first (openmfa device revoke)"
            )


# -- what a device signs -------------------------------------------------------------------------


def signed(payload: str, signature: str, op: str) -> proto.Signed:
    """A device's signed message (``op``: poll or answer), well formed or refused."""
    try:
        return proto.Signed.decode(payload, signature, op)
    except proto.ProtocolError as exc:
        raise DeviceRefused(f"the signed {op} is not well formed: {exc}") from None


def verified(conn: Connection, message: proto.Signed, now: float) -> Any:
    """The device's row, once its key verifies ``message`` and its clock is close to ``now``."""
    device = conn.execute(
        select(t.devices).where(t.devices.c.method_id == message.device_id)
    ).first()
    if device is None:
        raise DeviceRefused("this device is not activated (or was revoked); activate it again")
    if not proto.DeviceKey(device.alg, bytes(device.public_key)).verify(
        message.raw, message.signature
    ):
        raise DeviceRefused("the signature does not match the device's key")
    if abs(int(message.body["ts"]) - now) > CLOCK_SKEW:
        raise DeviceClockOff(
            f"the device's clock is more than {CLOCK_SKEW} seconds off; set its time"
        )
    return device


def _audit(store: Store, conn: Connection, event: AuditEvent) -> None:
    conn.execute(insert(t.audit).values(event.row(store.node_name, time.time())))


def _new_code() -> str:
    """16 characters of Crockford-free base32 (80 bits), easy to type from a screen."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return raw


def _hash(code: str) -> bytes:
    return hashlib.sha256(b"openmfa-activation:" + code.encode()).digest()
