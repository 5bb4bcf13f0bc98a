"""Screen-lock approvals (``[mobile] require_unlock``, ``node.push_unlock``) against a real data
file, with a software platform authenticator made here (ES256, attestation "none"): an
activation needs a registration of the code's challenge and keeps its code until one verifies;
an approval needs an assertion of that credential over the request's nonce, with user
verification, else it is refused and the request stays pending with the device's counter where
it was; a denial never needs it; with the setting off nothing changes; the SDK's routes answer a
broken credential with a 4xx."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.core import push as proto
from openmfa.errors import ConfigError, Conflict, DeviceRefused, UnlockRequired
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.push import PushService
from openmfa.node.push_unlock import UnlockParty, origin_of
from openmfa.sdk.app import create_app
from openmfa.store import tables as t
from openmfa.store.database import Store
from openmfa.wiring import NodeRuntime
from tests.node.test_push import Phone

ORIGIN = "https://mfa.example.org"
PUBLIC_URL = ORIGIN + "/mobile"
RP_ID = "mfa.example.org"
UP, UV, AT = 0x01, 0x04, 0x40
"""authenticatorData flags (WebAuthn L3 6.1): user present, user verified, attested data."""


class Authenticator:
    """A platform authenticator in software: one ES256 credential, its signatures counted."""

    def __init__(self, rp_id: str = RP_ID, origin: str = ORIGIN) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.rp_id, self.origin = rp_id, origin
        self.count = 0

    def _client_data(self, kind: str, challenge: bytes) -> bytes:
        said = {"type": kind, "challenge": proto.b64u(challenge), "origin": self.origin}
        return json.dumps(said | {"crossOrigin": False}).encode()

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        self.count += 1
        rp = hashlib.sha256(self.rp_id.encode()).digest()
        return rp + bytes([flags]) + self.count.to_bytes(4, "big") + attested

    def register(self, code: str, *, verified: bool = True) -> str:
        """``PublicKeyCredential.toJSON()`` of a registration for activation code ``code``."""
        typed = code.strip().upper().replace(" ", "")
        challenge = hashlib.sha256(b"openmfa-unlock:" + typed.encode()).digest()
        n = self.key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")}
        cid = self.credential_id
        attested = bytes(16) + len(cid).to_bytes(2, "big") + cid + cbor2.dumps(cose)
        auth = self._auth_data(UP | AT | (UV if verified else 0), attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth})
        response = {
            "clientDataJSON": proto.b64u(self._client_data("webauthn.create", challenge)),
            "attestationObject": proto.b64u(attestation),
            "transports": ["internal"],
        }
        return self._credential(response)

    def assertion(self, nonce: str, *, verified: bool = True) -> str:
        """``PublicKeyCredential.toJSON()`` of an assertion over a push request's nonce."""
        client_data = self._client_data("webauthn.get", proto.unb64u(nonce))
        auth = self._auth_data(UP | (UV if verified else 0))
        signed = auth + hashlib.sha256(client_data).digest()
        response = {
            "clientDataJSON": proto.b64u(client_data),
            "authenticatorData": proto.b64u(auth),
            "signature": proto.b64u(self.key.sign(signed, ec.ECDSA(hashes.SHA256()))),
        }
        return self._credential(response)

    def _credential(self, response: dict[str, Any]) -> str:
        cid = proto.b64u(self.credential_id)
        return json.dumps(
            {
                "id": cid,
                "rawId": cid,
                "type": "public-key",
                "response": response,
                "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
            }
        )


def _config(config: Config, required: bool) -> Config:
    mobile = {
        **config.values["mobile"],
        "public_url": PUBLIC_URL,
        "require_unlock": required,
        "min_gap_seconds": 0.0,  # one push right after another
    }
    return Config({**config.values, "mobile": mobile}, None)


@pytest.fixture
def locked(store: Store, config: Config) -> PushService:
    """The push service of a node whose approvals need the screen lock."""
    Accounts(store, config).add_user("alice")
    return PushService(store, _config(config, True), Accounts(store, config))


def _activated(push: PushService, authenticator: Authenticator | None) -> Phone:
    phone = Phone()
    code = push.issue_activation("alice").code
    unlock = authenticator.register(code) if authenticator is not None else ""
    phone.device_id = push.activate(code, "ES256", phone.public_key(), unlock=unlock).device_id
    return phone


def _open(push: PushService) -> tuple[str, str, str, bool]:
    """A new push request for alice: (id, number, nonce, whether it says unlock)."""
    with push.store.write() as conn:
        decision, opened = push.open(
            conn, "alice", None, client="app", source="", request_id="", now=time.time()
        )
    assert decision.pending is not None and opened is not None
    push_id, number, _ = decision.pending
    return push_id, number, opened.request.nonce, opened.request.unlock


def _counter(store: Store, device_id: str) -> int:
    d = t.devices
    with store.read() as conn:
        return int(conn.scalar(select(d.c.counter).where(d.c.method_id == device_id)) or 0)


def _reasons(store: Store, action: str) -> list[tuple[str, str]]:
    a = t.audit
    with store.read() as conn:
        rows = conn.execute(select(a.c.result, a.c.reason).where(a.c.action == action)).all()
    return [(r.result, r.reason) for r in rows]


# -- activation -----------------------------------------------------------------------------------


def test_an_activation_needs_the_screen_lock_and_keeps_its_code(locked: PushService) -> None:
    code = locked.issue_activation("alice").code
    phone = Phone()
    with pytest.raises(UnlockRequired, match="screen lock") as refused:
        locked.activate(code, "ES256", phone.public_key())
    assert refused.value.code == "unlock_required" and refused.value.http_status == 409
    assert locked.list_devices("alice") == []
    # The app registers its credential and sends the same code again (as typed: any case).
    authenticator = Authenticator()
    unlock = authenticator.register(code)
    done = locked.activate(code.lower(), "ES256", phone.public_key(), unlock=unlock)
    with locked.store.read() as conn:
        kept = conn.scalar(
            select(t.devices.c.unlock).where(t.devices.c.method_id == done.device_id)
        )
    assert json.loads(kept)["id"] == proto.b64u(authenticator.credential_id)


REGISTRATIONS: dict[str, Callable[[str], str]] = {
    "broken": lambda code: "{not json",
    "deep": lambda code: "[" * 3000 + "]" * 3000,
    "list": lambda code: "[]",
    "fields": lambda code: '{"id": 1}',
    "challenge": lambda code: Authenticator().register("ANOTHERCODE"),
    "origin": lambda code: Authenticator(origin="https://evil.example").register(code),
    "rp id": lambda code: Authenticator(rp_id="example.org").register(code),
    "unverified": lambda code: Authenticator().register(code, verified=False),
    "assertion": lambda code: Authenticator().assertion(
        proto.b64u(hashlib.sha256(code.encode()).digest())
    ),
}


@pytest.mark.parametrize("why", list(REGISTRATIONS))
def test_a_registration_that_does_not_verify_is_refused_and_the_code_kept(
    locked: PushService, why: str
) -> None:
    code = locked.issue_activation("alice").code
    phone = Phone()
    unlock = REGISTRATIONS[why](code)
    with pytest.raises(DeviceRefused, match="screen-lock credential is refused"):
        locked.activate(code, "ES256", phone.public_key(), unlock=unlock)
    assert _reasons(locked.store, "device.activate") == [("rejected", "unlock")]
    # The code is still good.
    locked.activate(code, "ES256", phone.public_key(), unlock=Authenticator().register(code))
    assert len(locked.list_devices("alice")) == 1


def test_a_data_set_at_format_6_cannot_keep_a_screen_lock(locked: PushService) -> None:
    with locked.store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="6"))
    code = locked.issue_activation("alice").code
    with pytest.raises(Conflict, match="data format 7; this data set is at 6"):
        locked.activate(code, "ES256", Phone().public_key(), unlock=Authenticator().register(code))
    assert locked.list_devices("alice") == []


# -- approvals ------------------------------------------------------------------------------------


def test_an_approval_with_the_screen_lock_is_accepted(locked: PushService) -> None:
    authenticator = Authenticator()
    phone = _activated(locked, authenticator)
    push_id, number, nonce, says_unlock = _open(locked)
    assert says_unlock  # the app knows to ask
    assert [r.unlock for r in locked.poll(*phone.poll()).requests] == [True]
    outcome = locked.answer(
        *phone.answer(push_id, nonce, "approve", number), unlock=authenticator.assertion(nonce)
    )
    assert outcome.status == "accepted"
    assert _counter(locked.store, phone.device_id) == phone.counter


def test_an_approval_without_a_good_unlock_is_refused_and_stays_pending(
    locked: PushService,
) -> None:
    authenticator = Authenticator()
    phone = _activated(locked, authenticator)
    push_id, number, nonce, _ = _open(locked)
    impostor = Authenticator()
    same_id = Authenticator()
    same_id.credential_id = authenticator.credential_id  # the id, another key
    bad = {
        "none": "",
        "broken": "{not json",
        "deep": "[" * 3000 + "]" * 3000,
        "unverified": authenticator.assertion(nonce, verified=False),
        "other nonce": authenticator.assertion(proto.new_nonce()),
        "other credential": impostor.assertion(nonce),
        "other key": same_id.assertion(nonce),
        "registration": authenticator.register("CODE"),
    }
    for why, unlock in bad.items():
        with pytest.raises(DeviceRefused, match="needs your phone's screen lock") as refused:
            locked.answer(*phone.answer(push_id, nonce, "approve", number), unlock=unlock)
        assert "approve again and unlock" in refused.value.message, why
        assert locked.outcome(push_id).status == "pending", why
        assert _counter(locked.store, phone.device_id) == 0, why  # the counter did not move
    assert _reasons(locked.store, "push.answer") == [("rejected", "unlock")] * len(bad)
    # Approved again, unlocked: accepted.
    outcome = locked.answer(
        *phone.answer(push_id, nonce, "approve", number), unlock=authenticator.assertion(nonce)
    )
    assert outcome.status == "accepted"


def test_a_denial_or_a_fraud_report_needs_no_unlock(locked: PushService) -> None:
    phone = _activated(locked, Authenticator())
    push_id, _, nonce, _ = _open(locked)
    assert locked.answer(*phone.answer(push_id, nonce, "deny", "")).status == "denied"
    push_id, _, nonce, _ = _open(locked)
    assert locked.answer(*phone.answer(push_id, nonce, "fraud", "")).status == "fraud"


def test_a_phone_activated_before_the_setting_is_told_to_activate_again(
    store: Store, config: Config
) -> None:
    Accounts(store, config).add_user("alice")
    before = PushService(store, _config(config, False), Accounts(store, config))
    phone = _activated(before, None)
    after = PushService(store, _config(config, True), Accounts(store, config))
    push_id, number, nonce, _ = _open(after)
    with pytest.raises(DeviceRefused, match="activated before approvals needed the screen lock"):
        after.answer(*phone.answer(push_id, nonce, "approve", number), unlock="{}")
    assert after.outcome(push_id).status == "pending"


def test_with_the_setting_off_nothing_changes(store: Store, config: Config) -> None:
    Accounts(store, config).add_user("alice")
    push = PushService(store, _config(config, False), Accounts(store, config))
    plain = _activated(push, None)  # no credential asked for
    push_id, number, nonce, says_unlock = _open(push)
    assert not says_unlock
    assert push.answer(*plain.answer(push_id, nonce, "approve", number)).status == "accepted"
    # A phone that registered a credential anyway approves without it too.
    phone = _activated(push, Authenticator())
    push_id, number, nonce, _ = _open(push)
    assert push.answer(*phone.answer(push_id, nonce, "approve", number)).status == "accepted"


@pytest.mark.parametrize(
    ("url", "origin", "rp_id"),
    [
        ("https://mfa.example.org/mobile", "https://mfa.example.org", "mfa.example.org"),
        ("https://MFA.example.org:443/m", "https://mfa.example.org", "mfa.example.org"),
        ("https://mfa.example.org:8443/m", "https://mfa.example.org:8443", "mfa.example.org"),
        ("http://localhost:8490/mobile", "http://localhost:8490", "localhost"),
        ("https://[::1]:8443/mobile", "https://[::1]:8443", "::1"),
    ],
)
def test_the_relying_party_is_the_mobile_services_public_url(
    url: str, origin: str, rp_id: str
) -> None:
    assert origin_of(url) == (origin, rp_id)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8480/mobile", "https://192.0.2.7/mobile", "http://mfa.example.org/m"],
)
def test_a_relying_party_no_phone_could_prove_to_is_a_configuration_error(
    config: Config, url: str
) -> None:
    """An IP address, or a named site on plain http (but localhost): the browser would refuse
    every screen-lock credential, so the node says what to set at start instead."""
    mobile = {**config.values["mobile"], "public_url": url, "require_unlock": True}
    with pytest.raises(ConfigError, match="require_unlock needs \\[mobile\\] public_url on https"):
        UnlockParty.of(Config({**config.values, "mobile": mobile}, None))
    # Off, the same URL is fine (plain push approvals need no relying party).
    mobile["require_unlock"] = False
    assert not UnlockParty.of(Config({**config.values, "mobile": mobile}, None)).required


# -- through the SDK's routes ---------------------------------------------------------------------


def test_the_sdk_routes_refuse_a_broken_unlock_with_a_4xx(store: Store, config: Config) -> None:
    """What the mobile service passes on: an activation without the credential (409), with a
    broken one (403), an approval with a broken or missing assertion (403, still pending), a
    credential longer than the contract allows (422); a good one is accepted."""
    Accounts(store, config).add_user("alice")
    devices = {"authorization": f"Bearer {ApiKeys(store).create('phones', 'mobile')}"}
    authenticator, phone = Authenticator(), Phone()

    async def scenario(node: NodeRuntime, c: httpx.AsyncClient) -> None:
        code = node.push.issue_activation("alice").code
        body = {"code": code, "alg": "ES256", "public_key": phone.public_key()}
        r = await c.post("/v1/devices", json=body, headers=devices)
        assert (r.status_code, r.json()["code"]) == (409, "unlock_required"), r.text
        r = await c.post("/v1/devices", json=body | {"unlock": "{[garbage"}, headers=devices)
        assert (r.status_code, r.json()["code"]) == (403, "unlock_refused"), r.text
        r = await c.post("/v1/devices", json=body | {"unlock": "x" * 9000}, headers=devices)
        assert r.status_code == 422, r.text
        good = body | {"unlock": authenticator.register(code)}
        r = await c.post("/v1/devices", json=good, headers=devices)
        assert r.status_code == 201, r.text
        phone.device_id = r.json()["device_id"]
        with node.store.write() as conn:
            decision, opened = node.push.open(
                conn, "alice", None, client="app", source="", request_id="", now=time.time()
            )
        assert decision.pending is not None and opened is not None
        push_id, number, _ = decision.pending
        nonce = opened.request.nonce
        for unlock in ("", "{[garbage", '{"rawId": "%%%"}'):
            payload, signature = phone.answer(push_id, nonce, "approve", number)
            answer = {"payload": payload, "signature": signature, "unlock": unlock}
            r = await c.post("/v1/push/answer", json=answer, headers=devices)
            assert (r.status_code, r.json()["code"]) == (403, "unlock_refused"), r.text
            assert "screen lock" in r.json()["message"]
        assert node.push.outcome(push_id).status == "pending"
        payload, signature = phone.answer(push_id, nonce, "approve", number)
        answer = {"payload": payload, "signature": signature}
        r = await c.post(
            "/v1/push/answer",
            json=answer | {"unlock": authenticator.assertion(nonce)},
            headers=devices,
        )
        assert (r.status_code, r.json()["status"]) == (200, "accepted"), r.text

    async def main() -> None:
        node = NodeRuntime(store, _config(config, True), radius_listen="")
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                await scenario(node, c)
        finally:
            await node.stop()

    asyncio.run(main())
