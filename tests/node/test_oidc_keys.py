"""ID-token signing keys: sealed, published with x5c, rotated with an overlap (the clock is the
test's), verified by joserfc and independently by ``cryptography``."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert, select

from openmfa.errors import Conflict, InvalidInput
from openmfa.node.oidc_keys import OidcKeys
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.node.oidc_helpers import (
    Clock,
    header_of,
    oidc_config,
    oidc_store,
    verify_independently,
)

__all__ = ["oidc_store"]

HOUR = 3600.0


def _keys(store: Store, clock: Clock) -> OidcKeys:
    return OidcKeys(store, oidc_config(), clock)


def test_the_first_key_signs_at_once_and_both_verifiers_accept_its_token(
    oidc_store: Store,
) -> None:
    clock = Clock()
    keys = _keys(oidc_store, clock)
    token = keys.sign({"sub": "s1", "iat": int(clock.now)})
    jwks = keys.jwks()
    assert len(jwks["keys"]) == 1 and set(jwks["keys"][0]) >= {"kid", "x5c", "n", "e", "alg"}
    assert jwks["keys"][0]["use"] == "sig" and jwks["keys"][0]["alg"] == "RS256"
    assert verify_independently(token, jwks)["sub"] == "s1"
    assert jwt.decode(token, KeySet.import_key_set(jwks)).claims["sub"] == "s1"
    # The private half is stored sealed only: the public modulus is not in the sealed bytes
    # and no PEM text is stored.
    with oidc_store.read() as conn:
        row = conn.execute(select(t.oidc_keys)).one()
    assert b"PRIVATE KEY" not in row.private_enc and row.private_enc[:1] == b"\x01"


def test_es256_keys_sign_and_are_published_beside_rs256(oidc_store: Store) -> None:
    clock = Clock()
    keys = _keys(oidc_store, clock)
    keys.ensure("RS256")
    token = keys.sign({"sub": "s2"}, alg="ES256")
    assert header_of(token)["alg"] == "ES256"
    jwks = keys.jwks()
    assert sorted(k["alg"] for k in jwks["keys"]) == ["ES256", "RS256"]
    assert verify_independently(token, jwks)["sub"] == "s2"
    assert jwt.decode(token, KeySet.import_key_set(jwks)).claims["sub"] == "s2"


def test_a_token_verified_by_another_key_fails(oidc_store: Store) -> None:
    clock = Clock()
    keys = _keys(oidc_store, clock)
    token = keys.sign({"sub": "s"})
    jwks = keys.jwks()
    with oidc_store.write() as conn:
        conn.execute(delete(t.oidc_keys))
    fresh = _keys(oidc_store, clock)
    fresh.ensure()  # another key, published under the first one's kid: must not verify
    forged = {"keys": [{**fresh.jwks()["keys"][0], "kid": jwks["keys"][0]["kid"]}]}
    with pytest.raises(InvalidSignature):
        verify_independently(token, forged)


def test_rotation_publishes_ahead_and_keeps_the_old_key_until_its_tokens_expired(
    oidc_store: Store,
) -> None:
    clock = Clock()
    keys = _keys(oidc_store, clock)
    before = keys.sign({"sub": "before"})
    old_kid = header_of(before)["kid"]
    clock.now += HOUR
    new = keys.rotate("RS256")
    assert new.state == "next" and new.signs_from == clock.now + 48 * HOUR
    # Published at once, but the old key signs until the new one's time.
    jwks = keys.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new.kid}
    assert verify_independently(before, jwks)["sub"] == "before"
    clock.now += 47 * HOUR
    assert header_of(keys.sign({"sub": "still-old"}))["kid"] == old_kid
    clock.now += 1 * HOUR + 1
    after = keys.sign({"sub": "after"})
    assert header_of(after)["kid"] == new.kid
    jwks = keys.jwks()
    assert verify_independently(after, jwks)["sub"] == "after"
    assert verify_independently(before, jwks)["sub"] == "before"  # its tokens may still live
    states = {s.kid: s.state for s in keys.listing()}
    assert states == {old_kid: "retiring", new.kid: "signing"}
    # Once the last token the old key signed has expired (300 s) and the skew passed: gone.
    clock.now += 300 + 300 + 1
    assert {k["kid"] for k in keys.jwks()["keys"]} == {new.kid}
    assert {s.kid: s.state for s in keys.listing()}[old_kid] == "expired"
    keys.rotate("RS256")  # and a later rotation removes it from the data
    with oidc_store.read() as conn:
        assert old_kid not in set(conn.scalars(select(t.oidc_keys.c.kid)))


def test_keys_survive_a_new_process_and_a_wrong_alg_is_refused(oidc_store: Store) -> None:
    clock = Clock()
    token = _keys(oidc_store, clock).sign({"sub": "x"})
    again = _keys(oidc_store, clock)  # nothing cached: from the data
    assert header_of(again.sign({"sub": "y"}))["kid"] == header_of(token)["kid"]
    with pytest.raises(InvalidInput, match="RS256, ES256"):
        again.rotate("HS256")


def test_keys_wait_for_data_format_8(oidc_store: Store) -> None:
    with oidc_store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="7"))
    with pytest.raises(Conflict, match=r"data format 8.*farm finalize"):
        _keys(oidc_store, Clock()).rotate("RS256")
