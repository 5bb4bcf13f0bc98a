"""Clients and the authorization code flow at the node: secrets hashed, redirect URIs matched
exactly, a code spent once, PKCE, expiry, the wrong client; the ID token judged independently."""

from __future__ import annotations

import hashlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from openmfa.contract import OidcCodeRequest, OidcTokenRequest
from openmfa.errors import AccessDenied, InvalidClient, InvalidGrant, InvalidInput, OAuthRefused
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups, groups_change
from openmfa.node.oidc_clients import OidcClients
from openmfa.node.oidc_codes import OidcCodes, s256
from openmfa.node.oidc_keys import OidcKeys
from openmfa.node.portal import FACTOR, SESSION, Grant
from openmfa.store import tables as t
from openmfa.store.changes import ChangeWriter
from openmfa.store.database import Store
from tests.node.oidc_helpers import Clock, oidc_config, oidc_store, verify_independently

__all__ = ["oidc_store"]

APP = "https://app.example.org/callback"


def _flow(store: Store) -> tuple[OidcCodes, Clock, Accounts]:
    clock = Clock()
    config = oidc_config()
    accounts = Accounts(store, config)
    accounts.add_user("alice", display_name="Alice A.", email="alice@example.org")
    return (
        OidcCodes(store, config, accounts, OidcKeys(store, config, clock), clock),
        clock,
        accounts,
    )


def _session(clock: Clock, factor: str = "swk", user: str = "alice") -> Grant:
    extra = {FACTOR: factor} if factor else {}
    return Grant(SESSION, user, "portal1", clock.now + 900, clock.now - 5, extra)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def test_a_confidential_client_s_secret_is_shown_once_and_stored_as_its_hash(
    oidc_store: Store,
) -> None:
    clients = OidcClients(oidc_store)
    made, secret = clients.add("grafana", [APP])
    assert secret.startswith("omfs_") and len(secret) > 40
    with oidc_store.read() as conn:
        stored = conn.execute(select(t.oidc_clients)).one()
    assert stored.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in repr(tuple(stored)).encode()
    assert clients.authenticate(made.client_id, secret).name == "grafana"
    with pytest.raises(InvalidClient):
        clients.authenticate(made.client_id, secret + "x")
    with pytest.raises(InvalidClient):
        clients.authenticate(made.client_id, "")
    public, none = clients.add("spa", [APP], public=True)
    assert none == "" and clients.authenticate(public.client_id, "").public
    assert "secret_hash" not in made.view()


def test_redirect_uris_are_checked_when_added(oidc_store: Store) -> None:
    clients = OidcClients(oidc_store)
    with pytest.raises(InvalidInput, match="https"):
        clients.add("a", ["http://app.example.org/cb"])
    with pytest.raises(InvalidInput, match="fragment"):
        clients.add("b", ["https://app.example.org/cb#x"])
    assert clients.add("c", ["http://127.0.0.1:8000/cb"])[0].redirect_uris == (
        "http://127.0.0.1:8000/cb",
    )


def test_a_code_gives_one_id_token_with_what_the_node_recorded(oidc_store: Store) -> None:
    codes, clock, _ = _flow(oidc_store)
    client, secret = codes.clients.add("grafana", [APP])
    verifier, challenge = _pkce()
    session = _session(clock, "swk")
    issued = codes.issue(
        session,
        OidcCodeRequest(
            client_id=client.client_id,
            redirect_uri=APP,
            code_challenge=challenge,
            nonce="n-123",
            scope="openid profile email",
        ),
        "portal1",
        "rid-1",
    )
    assert issued.expires_at == clock.now + 60
    token_request = OidcTokenRequest(
        code=issued.code,
        client_id=client.client_id,
        client_secret=secret,
        redirect_uri=APP,
        code_verifier=verifier,
    )
    clock.now += 5
    answer = codes.redeem(token_request, "portal2", "rid-2")  # another portal host redeems it
    claims = verify_independently(answer.id_token, codes.keys.jwks())
    assert claims["iss"] == "https://portal.example.org/portal"
    assert claims["aud"] == client.client_id and claims["nonce"] == "n-123"
    assert claims["amr"] == ["pwd", "swk", "mfa"] and claims["acr"] == "urn:openmfa:acr:mfa"
    assert claims["auth_time"] == int(session.issued_at)
    assert claims["exp"] - claims["iat"] == 300
    assert claims["preferred_username"] == "alice" and claims["name"] == "Alice A."
    assert claims["email"] == "alice@example.org"
    assert "groups" not in claims  # in no group: no claim
    assert len(claims["sub"]) == 22 and "alice" not in claims["sub"]
    # Single use: the same request again is refused, and audited.
    with pytest.raises(InvalidGrant, match="used already"):
        codes.redeem(token_request, "portal1", "rid-3")
    events = audit.query(oidc_store, limit=100)
    refused = [e for e in events if e.action == "oidc.token" and e.result == "refused"]
    assert refused and refused[0].reason == "invalid_grant"
    assert all(issued.code not in (e.detail + e.reason) for e in events)
    assert all(secret not in (e.detail + e.reason) for e in events)


def test_the_id_token_names_the_person_s_groups_of_both_origins(oidc_store: Store) -> None:
    codes, clock, accounts = _flow(oidc_store)
    client, secret = codes.clients.add("grafana", [APP])
    groups = Groups(oidc_store, accounts)
    groups.add("alice", "vpn")
    with oidc_store.read() as conn:  # as a directory source's synchronisation writes them
        user_id = accounts.user_in(conn, "alice")[1]
    ChangeWriter(oidc_store).commit([groups_change(user_id, "directory", ["Admins"], [])])
    code, verifier = _issue(codes, clock, client.client_id, scope="openid")
    answer = codes.redeem(
        OidcTokenRequest(
            code=code,
            client_id=client.client_id,
            client_secret=secret,
            redirect_uri=APP,
            code_verifier=verifier,
        ),
        "portal1",
        "rid",
    )
    claims = verify_independently(answer.id_token, codes.keys.jwks())
    assert claims["groups"] == ["Admins", "vpn"]
    assert "groups" in codes.provider().discovery["claims_supported"]


def _issue(codes: OidcCodes, clock: Clock, client_id: str, **over: Any) -> tuple[str, str]:
    verifier, challenge = _pkce()
    fields = {"client_id": client_id, "redirect_uri": APP, "code_challenge": challenge, **over}
    issued = codes.issue(_session(clock, "otp"), OidcCodeRequest(**fields), "portal1", "r")
    return issued.code, verifier


def test_every_wrong_redemption_is_invalid_grant_and_spends_nothing(oidc_store: Store) -> None:
    codes, clock, _ = _flow(oidc_store)
    client, secret = codes.clients.add("app", [APP, APP + "2"])
    other, other_secret = codes.clients.add("other", [APP])
    code, verifier = _issue(codes, clock, client.client_id)

    def redeem(**over: str) -> None:
        fields = {
            "code": code,
            "client_id": client.client_id,
            "client_secret": secret,
            "redirect_uri": APP,
            "code_verifier": verifier,
            **over,
        }
        codes.redeem(OidcTokenRequest(**fields), "portal1", "r")

    with pytest.raises(InvalidGrant, match="code_verifier"):
        redeem(code_verifier=secrets.token_urlsafe(48))
    with pytest.raises(InvalidGrant, match="redirect_uri"):
        redeem(redirect_uri=APP + "2")
    with pytest.raises(InvalidGrant, match="not valid for this client"):
        redeem(client_id=other.client_id, client_secret=other_secret)
    with pytest.raises(InvalidClient):
        redeem(client_secret="omfs_wrong")
    redeem()  # none of those spent it
    expiring, v2 = _issue(codes, clock, client.client_id)
    clock.now += 61
    with pytest.raises(InvalidGrant, match="expired"):
        redeem(code=expiring, code_verifier=v2)


def test_a_code_is_refused_without_a_second_factor_or_for_a_wrong_request(
    oidc_store: Store,
) -> None:
    codes, clock, _ = _flow(oidc_store)
    client, _ = codes.clients.add("app", [APP])
    _, challenge = _pkce()
    good = {"client_id": client.client_id, "redirect_uri": APP, "code_challenge": challenge}
    for factor in ("", "bypass"):
        with pytest.raises(AccessDenied, match="no second factor"):
            codes.issue(_session(clock, factor), OidcCodeRequest(**good), "portal1", "r")
    with pytest.raises(OAuthRefused, match="redirect_uri"):
        req = OidcCodeRequest(**{**good, "redirect_uri": APP + "/"})
        codes.issue(_session(clock), req, "portal1", "r")
    with pytest.raises(InvalidClient):
        codes.issue(_session(clock), OidcCodeRequest(**{**good, "client_id": "nope"}), "p", "r")
    with pytest.raises(OAuthRefused, match="openid"):
        req = OidcCodeRequest(**good, scope="profile")
        codes.issue(_session(clock), req, "portal1", "r")
    with pytest.raises(AccessDenied, match="max_age"):
        codes.issue(_session(clock), OidcCodeRequest(**good, max_age=1), "portal1", "r")
    with oidc_store.read() as conn:
        assert conn.scalar(select(t.oidc_codes.c.code_hash)) is None  # nothing issued
    refusals = [e for e in audit.query(oidc_store, limit=20) if e.action == "oidc.code"]
    assert len(refusals) == 6 and {e.result for e in refusals} == {"refused"}


def test_the_subject_is_stable_and_differs_between_people(oidc_store: Store) -> None:
    codes, clock, accounts = _flow(oidc_store)
    accounts.add_user("bob")
    client, secret = codes.clients.add("app", [APP])

    def sub_of(user: str) -> str:
        verifier, challenge = _pkce()
        req = OidcCodeRequest(
            client_id=client.client_id, redirect_uri=APP, code_challenge=challenge
        )
        code = codes.issue(_session(clock, "hwk", user), req, "portal1", "r").code
        token = codes.redeem(
            OidcTokenRequest(
                code=code,
                client_id=client.client_id,
                client_secret=secret,
                redirect_uri=APP,
                code_verifier=verifier,
            ),
            "portal1",
            "r",
        )
        claims = verify_independently(token.id_token, codes.keys.jwks())
        assert claims["amr"] == ["pwd", "hwk", "mfa"] and "email" not in claims
        return str(claims["sub"])

    assert sub_of("alice") == sub_of("alice") != sub_of("bob")


def _token_request(code: str, client_id: str, secret: str, verifier: str) -> OidcTokenRequest:
    fields = {"code": code, "client_id": client_id, "client_secret": secret}
    return OidcTokenRequest(**fields, redirect_uri=APP, code_verifier=verifier)


def test_a_code_redeemed_at_once_by_many_requests_gives_one_id_token(oidc_store: Store) -> None:
    codes, clock, _ = _flow(oidc_store)
    client, secret = codes.clients.add("app", [APP])
    code, verifier = _issue(codes, clock, client.client_id)
    request = _token_request(code, client.client_id, secret, verifier)
    start = threading.Barrier(8)

    def redeem(_: int) -> str:
        start.wait(timeout=30)
        try:
            return codes.redeem(request, "portal1", "r").id_token
        except InvalidGrant as refused:
            return f"refused: {refused.message}"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(redeem, range(8)))
    tokens = [a for a in answers if not a.startswith("refused")]
    assert len(tokens) == 1, answers
    assert verify_independently(tokens[0], codes.keys.jwks())["aud"] == client.client_id
    assert all("used already" in a for a in answers if a.startswith("refused"))
    events = [e for e in audit.query(oidc_store, limit=100) if e.action == "oidc.token"]
    assert [e.result for e in events].count("issued") == 1
    assert [e.result for e in events].count("refused") == 7


def test_a_code_of_a_person_disabled_meanwhile_is_refused_and_spent(oidc_store: Store) -> None:
    codes, clock, accounts = _flow(oidc_store)
    client, secret = codes.clients.add("app", [APP])
    code, verifier = _issue(codes, clock, client.client_id)
    request = _token_request(code, client.client_id, secret, verifier)
    accounts.update_user("alice", {"enabled": False})
    with pytest.raises(InvalidGrant, match="disabled or locked"):
        codes.redeem(request, "portal1", "r")
    accounts.update_user("alice", {"enabled": True})
    with pytest.raises(InvalidGrant, match="used already"):
        codes.redeem(request, "portal1", "r")
    issued = [e for e in audit.query(oidc_store, limit=100) if e.result == "issued"]
    assert [e.action for e in issued] == ["oidc.code"]
