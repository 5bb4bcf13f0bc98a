"""Entra ID's external authentication method at the node, against a stand-in for Entra: its own
RSA key, its JWKS served over HTTP on 127.0.0.1, hints signed the way Entra signs them (already
expired). The stand-in checks the answer as Microsoft documents it:

- the signature verifies with the provider's published JWKS (RS256, with x5c);
- ``iss`` is the provider's discovery issuer, ``aud`` the client id Entra sent, ``sub`` the
  hint's ``sub``, ``nonce`` the request's;
- ``acr`` is exactly one of the values asked for, and ``amr`` an array of exactly one value of
  Entra's list (never ``pwd`` or ``mfa``).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from openmfa.contract import OidcEamStart
from openmfa.errors import (
    AccessDenied,
    InvalidClient,
    OAuthRefused,
    Unauthorized,
    UnauthorizedClient,
)
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups
from openmfa.node.oidc_clients import ENTRA_REDIRECT, OidcClients
from openmfa.node.oidc_eam import ENTRA_AMR, KEYS_UNREADABLE, REFETCH_GAP, EntraEam, TenantKeys
from openmfa.node.oidc_keys import OidcKeys
from openmfa.node.oidc_subjects import OidcSubjects
from openmfa.node.portal import EAM, FACTOR, SESSION, TICKET, VIA, Grant, PortalTokens
from openmfa.store.database import Store
from tests.node.oidc_helpers import Clock, oidc_config, oidc_store, verify_independently

__all__ = ["oidc_store"]

TENANT = str(uuid.uuid4())
APP_ID = str(uuid.uuid4())  # OpenMFA's application id in the tenant: the hint's aud
CLAIMS = json.dumps(
    {
        "id_token": {
            "acr": {"essential": True, "values": ["possessionorinherence"]},
            "amr": {"essential": True, "values": list(ENTRA_AMR)},
        }
    }
)


class StandInEntra:
    """A tenant's signing key and its JWKS at ``jwks_uri`` (a local HTTP server)."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, private=True, auto_kid=True)
        self.fetches = 0
        entra = self

        class Keys(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entra.fetches += 1
                body = json.dumps({"keys": [entra.key.as_dict(private=False)]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
        self.jwks_uri = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hint(self, now: float, key: RSAKey | None = None, **over: Any) -> str:
        """An id_token_hint as Entra sends it: issued a moment ago, expired already."""
        claims = {
            "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            "aud": APP_ID,
            "tid": TENANT,
            "oid": OID,
            "sub": "entra-pairwise-sub-1",
            "preferred_username": "alice@example.org",
            "iat": int(now - 5),
            "nbf": int(now - 5),
            "exp": int(now - 305),
            **over,
        }
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


OID = str(uuid.uuid4())


@pytest.fixture
def entra() -> Iterator[StandInEntra]:
    e = StandInEntra()
    try:
        yield e
    finally:
        e.close()


def _eam(store: Store, entra: StandInEntra, match_upn: bool = False) -> tuple[EntraEam, Clock, str]:
    clock = Clock()
    config = oidc_config()
    accounts = Accounts(store, config)
    accounts.add_user("alice", display_name="Alice")
    accounts.enroll("alice", "totp")
    client, _ = OidcClients(store).add(
        "entra",
        [],
        kind="entra-eam",
        entra_tenant=TENANT,
        entra_client_id=APP_ID,
        jwks_uri=entra.jwks_uri,
        match_upn=match_upn,
    )
    keys = OidcKeys(store, config, clock)
    eam = EntraEam(
        store, config, accounts, PortalTokens(store, config), keys, TenantKeys(clock), clock
    )
    return eam, clock, client.client_id


def _start(eam: EntraEam, clock: Clock, client_id: str, hint: str) -> Any:
    request = OidcEamStart(
        client_id=client_id,
        redirect_uri=ENTRA_REDIRECT,
        id_token_hint=hint,
        claims=CLAIMS,
        nonce="n-9",
    )
    return eam.start(request, "portal1", "rid")


def _session_after(clock: Clock, factor: str, user: str = "alice") -> Grant:
    clock.now += 20  # the person types the code
    return Grant(SESSION, user, "portal1", clock.now + 900, clock.now, {FACTOR: factor, VIA: EAM})


def test_an_expired_hint_is_accepted_and_the_answer_passes_entra_s_checks(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    Groups(oidc_store, eam.accounts).add("alice", "vpn")  # not a claim Entra's answer has
    started = _start(eam, clock, client_id, entra.hint(clock.now))
    assert started.user == "alice" and started.kinds == ["totp"]
    ticket = eam.portal.check(started.ticket, TICKET, "portal1", clock.now, via=EAM)
    assert ticket.user == "alice"
    answer = eam.finish(_session_after(clock, "otp"), started.request, "portal1", "rid")
    assert answer.redirect_uri == ENTRA_REDIRECT
    # The stand-in's checks, as Microsoft lists them:
    claims = verify_independently(answer.id_token, eam.keys.jwks())
    assert claims["iss"] == "https://portal.example.org/portal"
    assert claims["aud"] == client_id
    assert claims["sub"] == "entra-pairwise-sub-1"
    assert claims["nonce"] == "n-9"
    assert claims["acr"] == "possessionorinherence"
    assert claims["amr"] == ["otp"] and not {"pwd", "mfa"} & set(claims["amr"])
    assert claims["exp"] > clock.now
    assert "groups" not in claims
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "acr", "amr", "nonce"}
    assert entra.fetches == 1


def test_refused_hints_and_people(oidc_store: Store, entra: StandInEntra) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    stranger = RSAKey.generate_key(2048, private=True, auto_kid=True)
    _start(eam, clock, client_id, entra.hint(clock.now))
    assert entra.fetches == 1
    clock.now += 61
    with pytest.raises(OAuthRefused, match="signature"):
        _start(eam, clock, client_id, entra.hint(clock.now, key=stranger))
    assert entra.fetches == 2  # an unknown kid: the keys fetched once more, not for ever
    with pytest.raises(OAuthRefused, match="signature"):
        _start(eam, clock, client_id, entra.hint(clock.now, key=stranger))
    assert entra.fetches == 2
    with pytest.raises(OAuthRefused, match="another tenant"):
        _start(eam, clock, client_id, entra.hint(clock.now, tid=str(uuid.uuid4())))
    with pytest.raises(OAuthRefused, match="another issuer"):
        _start(eam, clock, client_id, entra.hint(clock.now, iss="https://evil.example/v2.0"))
    with pytest.raises(OAuthRefused, match="another application"):
        _start(eam, clock, client_id, entra.hint(clock.now, aud=str(uuid.uuid4())))
    with pytest.raises(AccessDenied, match="not mapped"):
        _start(eam, clock, client_id, entra.hint(clock.now, oid=str(uuid.uuid4())))
    with pytest.raises(OAuthRefused, match="redirect_uri"):
        eam.start(
            OidcEamStart(
                client_id=client_id, redirect_uri="https://evil.example/", id_token_hint="x"
            ),
            "portal1",
            "rid",
        )
    app, _ = eam.clients.add("app", ["https://app.example.org/cb"])
    with pytest.raises(UnauthorizedClient):
        _start(eam, clock, app.client_id, entra.hint(clock.now))
    eam_events = [e for e in audit.query(oidc_store, limit=100) if e.action == "oidc.eam"]
    assert [e.result for e in eam_events] == ["started"] + ["refused"] * 8


def test_the_answer_needs_a_fresh_second_factor_of_the_same_person(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    eam.accounts.add_user("bob")
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    earlier = Grant(
        SESSION, "alice", "portal1", clock.now + 900, clock.now - 60, {FACTOR: "otp", VIA: EAM}
    )
    started = _start(eam, clock, client_id, entra.hint(clock.now))
    with pytest.raises(AccessDenied, match="after it"):  # a remembered session is no factor
        eam.finish(earlier, started.request, "portal1", "rid")
    with pytest.raises(AccessDenied, match="another person"):  # a sub mismatch
        eam.finish(_session_after(clock, "otp", "bob"), started.request, "portal1", "rid")
    with pytest.raises(AccessDenied, match="no second factor"):
        eam.finish(_session_after(clock, ""), started.request, "portal1", "rid")
    with pytest.raises(OAuthRefused, match="not valid"):  # another portal's, or forged
        eam.finish(_session_after(clock, "otp"), started.request, "portal2", "rid")
    with pytest.raises(OAuthRefused, match="not valid"):
        eam.finish(_session_after(clock, "otp"), started.request[:-4] + "AAAA", "portal1", "rid")
    clock.now += 601  # Entra gave up
    with pytest.raises(OAuthRefused, match="not valid"):
        eam.finish(_session_after(clock, "otp"), started.request, "portal1", "rid")


def test_only_an_amr_entra_asked_for_is_answered(oidc_store: Store, entra: StandInEntra) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    only_fido = json.dumps({"id_token": {"amr": {"values": ["fido", "pwd"]}}})
    request = OidcEamStart(
        client_id=client_id,
        redirect_uri=ENTRA_REDIRECT,
        id_token_hint=entra.hint(clock.now),
        claims=only_fido,
    )
    started = eam.start(request, "portal1", "rid")
    with pytest.raises(AccessDenied, match="did not ask for swk"):
        eam.finish(_session_after(clock, "swk"), started.request, "portal1", "rid")


def test_first_use_by_upn_only_where_the_client_allows_it(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    eam.accounts.add_user("alice@example.org")
    eam.accounts.enroll("alice@example.org", "totp")
    with pytest.raises(AccessDenied, match="not mapped"):
        _start(eam, clock, client_id, entra.hint(clock.now))
    matching_id = _upn_client(eam, entra)
    started = _start(eam, clock, matching_id, entra.hint(clock.now))
    assert started.user == "alice@example.org"
    assert OidcSubjects(oidc_store).find(TENANT, OID) == "alice@example.org"
    matched = [e for e in audit.query(oidc_store, limit=100) if e.action == "oidc.subject.match"]
    assert len(matched) == 1 and matched[0].user == "alice@example.org"
    # and from then on the first client finds the person too, by oid + tid
    assert _start(eam, clock, client_id, entra.hint(clock.now)).user == "alice@example.org"


def _upn_client(eam: EntraEam, entra: StandInEntra) -> str:
    """A second client of the same tenant, added with --match-upn."""
    client, _ = eam.clients.add(
        "entra-upn",
        [],
        kind="entra-eam",
        entra_tenant=TENANT,
        entra_client_id=APP_ID,
        jwks_uri=entra.jwks_uri,
        match_upn=True,
    )
    return client.client_id


def test_a_hint_is_taken_only_within_ten_minutes_of_its_iat(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    captured = entra.hint(clock.now)
    assert _start(eam, clock, client_id, captured).user == "alice"
    clock.now += 601  # the same hint, replayed later
    with pytest.raises(OAuthRefused, match="iat"):
        _start(eam, clock, client_id, captured)
    with pytest.raises(OAuthRefused, match="iat"):  # issued in the future
        _start(eam, clock, client_id, entra.hint(clock.now, iat=int(clock.now + 3600)))
    with pytest.raises(OAuthRefused, match="iat"):  # or naming no time at all
        _start(eam, clock, client_id, entra.hint(clock.now, iat="yesterday"))
    with pytest.raises(OAuthRefused, match="nbf"):
        _start(eam, clock, client_id, entra.hint(clock.now, nbf=int(clock.now + 3600)))


def test_an_eam_sign_in_is_good_for_finishing_it_only_and_once(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    OidcSubjects(oidc_store).map("alice", OID, TENANT)
    started = _start(eam, clock, client_id, entra.hint(clock.now))
    with pytest.raises(Unauthorized, match="Entra ID started"):  # not a portal sign-in's ticket
        eam.portal.check(started.ticket, TICKET, "portal1", clock.now)
    own, _ = eam.portal.issue(SESSION, "alice", "portal1", clock.now, {FACTOR: "otp"})
    with pytest.raises(Unauthorized, match="not of a sign-in Entra ID started"):
        eam.portal.check(own, SESSION, "portal1", clock.now, via=EAM)
    portal_session = Grant(
        SESSION, "alice", "portal1", clock.now + 900, clock.now + 20, {FACTOR: "otp"}
    )
    with pytest.raises(AccessDenied, match="not of the sign-in Entra ID started"):
        eam.finish(portal_session, started.request, "portal1", "rid")
    session = _session_after(clock, "otp")
    assert eam.finish(session, started.request, "portal1", "rid").id_token
    with pytest.raises(OAuthRefused, match="finished already"):
        eam.finish(session, started.request, "portal1", "rid")
    again = _start(eam, clock, client_id, entra.hint(clock.now))
    eam.clients.remove("entra")  # Entra's registration withdrawn meanwhile
    with pytest.raises(InvalidClient):
        eam.finish(_session_after(clock, "otp"), again.request, "portal1", "rid")


def test_deep_json_in_the_hint_or_claims_is_refused_not_raised(
    oidc_store: Store, entra: StandInEntra
) -> None:
    eam, clock, client_id = _eam(oidc_store, entra)
    deep = "[" * 5000
    with pytest.raises(OAuthRefused, match="claims parameter"):
        eam.start(
            OidcEamStart(
                client_id=client_id,
                redirect_uri=ENTRA_REDIRECT,
                id_token_hint=entra.hint(clock.now),
                claims=deep,
            ),
            "portal1",
            "rid",
        )
    head = base64.urlsafe_b64encode(deep.encode()).decode().rstrip("=")
    with pytest.raises(OAuthRefused, match="not a JWT"):
        _start(eam, clock, client_id, f"{head}.e30.sig")
    assert entra.fetches == 0  # refused before any key was fetched


def test_an_unreachable_tenant_is_asked_once_per_gap(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock, tries = Clock(), []

    def unreachable(uri: str, **_: Any) -> httpx.Response:
        tries.append(uri)
        raise httpx.ConnectError("no route to host")

    monkeypatch.setattr(httpx, "get", unreachable)  # what oidc_eam calls
    keys = TenantKeys(clock)
    for _ in range(3):
        with pytest.raises(OAuthRefused) as refused:
            keys.for_kid("https://login.example/keys", "k1")
        # The refusal goes back to Entra and the browser: no address or exception of ours.
        assert refused.value.message == KEYS_UNREADABLE
        assert "login.example" not in str(refused.value) and "Connect" not in str(refused.value)
    assert "login.example/keys (ConnectError)" in caplog.text  # the administrator's log has it
    assert len(tries) == 1  # the failure is remembered, not fetched again for every hint
    clock.now += REFETCH_GAP + 1
    with pytest.raises(OAuthRefused):
        keys.for_kid("https://login.example/keys", "k1")
    assert len(tries) == 2
