"""Passkeys (``node.passkeys``) against a real store, with a software authenticator: an EC
P-256 key that builds and signs real WebAuthn data (authenticatorData, the hash of
clientDataJSON), so py_webauthn checks what a browser's passkey would send."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from webauthn.helpers import bytes_to_base64url, encode_cbor

from openmfa.config import Config
from openmfa.errors import InvalidInput, Unauthorized
from openmfa.node import audit
from openmfa.node.accounts import Accounts, Actor
from openmfa.node.passkeys import MAX_PASSKEYS, Passkeys
from openmfa.node.portal import PortalTokens
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.conftest import make_config

ORIGIN = "https://portal.example.org"
CLIENT = "portal-key"
UP, UV, AT = 0x01, 0x04, 0x40
"""authenticatorData flags: user present, user verified, attested credential data."""


class SoftPasskey:
    """A platform passkey in software. ``counts``: it counts its signatures (most synced
    passkeys do not, and always send 0)."""

    def __init__(self, *, counts: bool = False, count: int = 0) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.counts = counts
        self.count = count

    @property
    def id(self) -> str:
        return bytes_to_base64url(self.credential_id)

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        return json.dumps(body).encode()

    def _auth_data(self, rp_id: str, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + self.count.to_bytes(4, "big") + attested

    def create(self, options: str, origin: str = ORIGIN, *, challenge: str = "") -> str:
        """The browser's answer to ``navigator.credentials.create`` (attestation "none")."""
        o = json.loads(options)
        numbers = self.key.public_key().public_numbers()
        cose = encode_cbor(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        cid = self.credential_id
        attested = bytes(16) + len(cid).to_bytes(2, "big") + cid + cose
        auth_data = self._auth_data(o["rp"]["id"], UP | UV | AT, attested)
        client_data = self._client_data("webauthn.create", challenge or o["challenge"], origin)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        response = {
            "clientDataJSON": bytes_to_base64url(client_data),
            "attestationObject": bytes_to_base64url(attestation),
        }
        return self._credential(response)

    def get(
        self,
        options: str,
        origin: str = ORIGIN,
        *,
        challenge: str = "",
        rp_id: str = "",
        verified: bool = True,
    ) -> str:
        """The browser's answer to ``navigator.credentials.get``: a real signature."""
        o = json.loads(options)
        if self.counts:
            self.count += 1
        auth_data = self._auth_data(rp_id or o["rpId"], UP | (UV if verified else 0))
        client_data = self._client_data("webauthn.get", challenge or o["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": bytes_to_base64url(client_data),
            "authenticatorData": bytes_to_base64url(auth_data),
            "signature": bytes_to_base64url(signature),
            "userHandle": None,
        }
        return self._credential(response)

    def _credential(self, response: Mapping[str, object]) -> str:
        return json.dumps(
            {
                "id": self.id,
                "rawId": self.id,
                "type": "public-key",
                "response": response,
                "clientExtensionResults": {},
            }
        )


def passkeys(store: Store, config: Config, **portal: object) -> Passkeys:
    accounts = Accounts(store, config)
    return Passkeys(accounts, PortalTokens(store, config), make_config(portal=portal))


def registered(pk: Passkeys, user: str, device: SoftPasskey, origin: str = ORIGIN) -> str:
    options, token, _ = pk.registration(user, CLIENT, origin)
    return pk.register(user, CLIENT, token, device.create(options, origin), "laptop", Actor()).id


def next_second() -> None:
    """Until the clock is in the next whole second (a challenge is taken once: none issued in
    or before the second of the last one taken)."""
    now = int(time.time())
    deadline = time.monotonic() + 5
    while int(time.time()) == now and time.monotonic() < deadline:
        time.sleep(0.01)


def sign_in(
    pk: Passkeys,
    user: str,
    device: SoftPasskey,
    *,
    origin: str = ORIGIN,
    challenge: str = "",
    rp_id: str = "",
    verified: bool = True,
) -> str | None:
    """A passkey sign-in from the options to the node's verdict (the answer as ``device``
    gives it, for ``origin``, ``challenge`` and ``rp_id`` when they are set)."""
    options, token, _ = pk.authentication(user, CLIENT, ORIGIN)
    answer = device.get(options, origin, challenge=challenge, rp_id=rp_id, verified=verified)
    return pk.authenticate(user, CLIENT, token, answer)


def counter(store: Store, method_id: str) -> int | None:
    ms = t.method_state
    with store.read() as conn:
        value = conn.scalar(select(ms.c.counter).where(ms.c.method_id == method_id))
    return None if value is None else int(value)


def test_a_registered_passkey_signs_in(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    before = time.time()
    options, token, expires = pk.registration("alice", CLIENT, ORIGIN)
    assert before + 170 < expires <= time.time() + 180  # a ceremony lives three minutes
    o = json.loads(options)
    assert o["rp"]["id"] == "portal.example.org" and o["user"]["name"] == "alice"
    assert o["authenticatorSelection"]["userVerification"] == "required"
    assert o["excludeCredentials"] == []
    device = SoftPasskey()
    view = pk.register("alice", CLIENT, token, device.create(options), "laptop", Actor())
    assert (view.kind, view.label) == ("passkey", "laptop") and view.id.startswith("k")
    assert [(m.id, m.kind) for m in pk.accounts.list_methods("alice")] == [(view.id, "passkey")]
    assert [(m, c) for m, c, _ in pk.stored("alice")] == [(view.id, device.credential_id)]
    events = audit.query(store, user="alice", actions=("method.add",))
    assert [(e.method_id, e.detail) for e in events] == [(view.id, "passkey")]
    # A second registration leaves out the passkey the user has already.
    again = json.loads(pk.registration("alice", CLIENT, ORIGIN)[0])
    assert [c["id"] for c in again["excludeCredentials"]] == [device.id]

    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    o = json.loads(options)
    assert o["rpId"] == "portal.example.org" and o["userVerification"] == "required"
    assert [c["id"] for c in o["allowCredentials"]] == [device.id]
    assert pk.authenticate("alice", CLIENT, token, device.get(options)) == view.id


def test_an_answer_to_another_challenge_is_refused(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    device = SoftPasskey()
    other = bytes_to_base64url(secrets.token_bytes(32))
    options, token, _ = pk.registration("alice", CLIENT, ORIGIN)
    with pytest.raises(InvalidInput, match="could not be registered"):
        pk.register("alice", CLIENT, token, device.create(options, challenge=other), "x", Actor())
    assert pk.stored("alice") == []
    method_id = registered(pk, "alice", device)
    assert sign_in(pk, "alice", device, challenge=other) is None
    # The answer to one ceremony does not fit the next one's challenge.
    first, _, _ = pk.authentication("alice", CLIENT, ORIGIN)
    _, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    assert pk.authenticate("alice", CLIENT, token, device.get(first)) is None
    assert sign_in(pk, "alice", device) == method_id


def test_an_answer_for_another_origin_or_site_is_refused(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    device = SoftPasskey()
    options, token, _ = pk.registration("alice", CLIENT, ORIGIN)
    phished = device.create(options, "https://portal.example.org.evil.test")
    with pytest.raises(InvalidInput):
        pk.register("alice", CLIENT, token, phished, "x", Actor())
    method_id = registered(pk, "alice", device)
    assert sign_in(pk, "alice", device, origin="https://evil.test") is None
    assert sign_in(pk, "alice", device, rp_id="evil.test") is None
    assert sign_in(pk, "alice", device, verified=False) is None  # user verification required
    assert sign_in(pk, "alice", device) == method_id


def test_origins_and_the_relying_party_id_come_from_the_configuration(
    store: Store, config: Config
) -> None:
    listed = passkeys(store, config, passkey_origins=[ORIGIN])
    listed.accounts.add_user("alice")
    with pytest.raises(InvalidInput, match="passkey_origins"):
        listed.registration("alice", CLIENT, "https://other.example.org")
    assert json.loads(listed.registration("alice", CLIENT, ORIGIN)[0])["rp"]["id"] == (
        "portal.example.org"
    )
    parent = passkeys(store, config, passkey_rp_id="example.org")
    device = SoftPasskey()
    options, token, _ = parent.registration("alice", CLIENT, ORIGIN)
    assert json.loads(options)["rp"]["id"] == "example.org"
    method_id = parent.register("alice", CLIENT, token, device.create(options), "", Actor()).id
    assert parent.accounts.list_methods("alice")[0].label == "passkey"  # the default label
    assert sign_in(parent, "alice", device) == method_id
    for rp_id in ("other.org", "ample.org", "portal.example.org.evil.test"):
        with pytest.raises(InvalidInput, match="passkey_rp_id"):
            passkeys(store, config, passkey_rp_id=rp_id).authentication("alice", CLIENT, ORIGIN)


def test_a_counting_authenticator_moves_only_forward(store: Store, config: Config) -> None:
    """An answer whose count is not above the last one (replayed, or from a clone) is refused,
    and the count kept is the last accepted one."""
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    device = SoftPasskey(counts=True)
    method_id = registered(pk, "alice", device)
    assert counter(store, method_id) == 0
    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    answer = device.get(options)
    assert pk.authenticate("alice", CLIENT, token, answer) == method_id
    assert counter(store, method_id) == 1
    assert pk.authenticate("alice", CLIENT, token, answer) is None  # the same answer again
    clone = SoftPasskey()
    clone.key, clone.credential_id, clone.count = device.key, device.credential_id, 0
    assert sign_in(pk, "alice", clone) is None  # its count (0) is behind
    clone.count, clone.counts = 1, False
    assert sign_in(pk, "alice", clone) is None  # its count (1) is the last one's
    device.count = 4
    next_second()  # a challenge of the second the last one taken was issued in is refused
    assert sign_in(pk, "alice", device) == method_id
    assert counter(store, method_id) == 5


def test_unknown_or_broken_credentials_are_refused(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    for user in ("alice", "bob"):
        pk.accounts.add_user(user)
    device, stranger = SoftPasskey(), SoftPasskey()
    registered(pk, "alice", device)
    bobs = SoftPasskey()
    registered(pk, "bob", bobs)
    assert sign_in(pk, "alice", stranger) is None  # never registered
    assert sign_in(pk, "alice", bobs) is None  # another user's passkey
    impostor = SoftPasskey()
    impostor.credential_id = device.credential_id  # alice's id, another key
    assert sign_in(pk, "alice", impostor) is None
    _, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    for broken in ("not json", "{}", "[]", json.dumps({"rawId": 5}), json.dumps({"rawId": "!"})):
        assert pk.authenticate("alice", CLIENT, token, broken) is None
    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    mangled = json.loads(device.get(options))
    mangled["response"]["signature"] = bytes_to_base64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    assert pk.authenticate("alice", CLIENT, token, json.dumps(mangled)) is None


def test_a_removed_passkey_no_longer_signs_in(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    laptop, phone = SoftPasskey(counts=True), SoftPasskey()
    gone = registered(pk, "alice", laptop)
    kept = registered(pk, "alice", phone)
    assert sign_in(pk, "alice", laptop) == gone
    pk.accounts.remove_method("alice", gone)
    assert counter(store, gone) is None  # its count went with it
    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    assert [c["id"] for c in json.loads(options)["allowCredentials"]] == [phone.id]
    assert pk.authenticate("alice", CLIENT, token, laptop.get(options)) is None
    assert pk.authenticate("alice", CLIENT, token, phone.get(options)) == kept
    pk.accounts.remove_method("alice", kept)
    with pytest.raises(InvalidInput, match="no passkey"):
        pk.authentication("alice", CLIENT, ORIGIN)
    assert pk.authenticate("alice", CLIENT, token, phone.get(options)) is None


def test_a_challenge_is_this_sign_ins_only(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    for user in ("alice", "bob"):
        pk.accounts.add_user(user)
    device = SoftPasskey()
    registered(pk, "alice", device)
    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    answer = device.get(options)
    with pytest.raises(InvalidInput, match="not this sign-in's"):
        pk.authenticate("bob", CLIENT, token, answer)
    with pytest.raises(Unauthorized):
        pk.authenticate("alice", "another-portal", token, answer)
    with pytest.raises(Unauthorized):
        pk.authenticate("alice", CLIENT, token[:-4] + "AAAA", answer)
    reg_options, reg_token, _ = pk.registration("alice", CLIENT, ORIGIN)
    with pytest.raises(InvalidInput, match="not this sign-in's"):
        pk.authenticate("alice", CLIENT, reg_token, answer)
    with pytest.raises(InvalidInput, match="not this sign-in's"):
        pk.register("alice", CLIENT, token, SoftPasskey().create(reg_options), "x", Actor())
    assert len(pk.stored("alice")) == 1


def test_at_most_ten_passkeys_a_user(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    for _ in range(MAX_PASSKEYS):
        registered(pk, "alice", SoftPasskey())
    with pytest.raises(InvalidInput, match=f"at most {MAX_PASSKEYS}"):
        pk.registration("alice", CLIENT, ORIGIN)
    assert len(pk.stored("alice")) == MAX_PASSKEYS


def test_an_answer_is_taken_once_even_from_an_authenticator_that_does_not_count(
    store: Store, config: Config
) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    device = SoftPasskey()
    method_id = registered(pk, "alice", device)
    options, token, _ = pk.authentication("alice", CLIENT, ORIGIN)
    answer = device.get(options)
    assert pk.authenticate("alice", CLIENT, token, answer) == method_id
    assert pk.authenticate("alice", CLIENT, token, answer) is None


def test_the_count_a_passkey_registers_with_is_kept(store: Store, config: Config) -> None:
    pk = passkeys(store, config)
    pk.accounts.add_user("alice")
    device = SoftPasskey(counts=True, count=7)
    method_id = registered(pk, "alice", device)
    device.count = 2  # a clone made before the registration: behind it
    assert sign_in(pk, "alice", device) is None
    assert counter(store, method_id) == 7
