"""The User Portal's way in (issue 13, its SDK side): a ``portal`` key alone can only start a
sign-in; after the user's password and a code the node gives a session token bound to that
user, and only that token opens calls about them. A real node over HTTP, oathtool for codes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openmfa.errors import Forbidden, InvalidInput, NotFound, Reauthenticate, Unauthorized
from openmfa.sdk.client import SdkClient

from .helpers import OPENMFA, cli, init, oathtool, server
from .test_fuzz import bodies

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
PASSWORD = "correct horse battery"


def test_the_portal_key_alone_can_only_start_a_sign_in(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    admin = init(dd)
    cli(dd, "user", "add", "pat")
    cli(dd, "user", "add", "sam")
    subprocess.run(
        [OPENMFA, "user", "set-password", "pat", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "pat", "totp", "--secret", SEED, "--no-qr")
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    other = cli(dd, "apikey", "create", "portal-2", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, portal) as p:
        # The key alone reads and changes nothing about anyone (the original's portal key
        # was an administrator's).
        for call in (
            lambda: p.list_users(),
            lambda: p.list_methods("sam"),
            lambda: p.enroll("sam", "totp"),
            lambda: p.issue_activation("sam"),
        ):
            with pytest.raises(Forbidden):
                call()
        # A wrong password and an unknown user look alike, and give nothing.
        wrong = p.portal_sign_in("pat", "not the password")
        assert (wrong.accepted, wrong.reason, wrong.ticket) == (False, "wrong_password", "")
        assert p.portal_sign_in("nobody", PASSWORD).reason == "wrong_password"
        assert wrong.kinds is None  # what a person can use is told after the password only
        first = p.portal_sign_in("pat", PASSWORD)
        assert first.accepted and first.ticket.startswith("omfp_") and not first.token
        assert first.kinds == ["totp"]  # the portal offers a push only to a person with the app
        with pytest.raises(Unauthorized):
            p.portal_me(first.ticket)  # a ticket is not a session
        # The second factor: a wrong code is refused like any authentication.
        bad = p.portal_second_factor(first.ticket, "000000")
        assert (bad.accepted, bad.reason, bad.token) == (False, "wrong_code", "")
        done = p.portal_second_factor(first.ticket, oathtool("--totp", "-b", SEED))
        assert done.accepted and done.token.startswith("omfp_") and done.expires_at > 0
        me = p.portal_me(done.token)
        assert me.user.name == "pat" and [m.kind for m in me.methods] == ["totp"]
        # A changed token, a token given to another portal key, no token: refused.
        flipped = done.token[:-3] + ("A" if done.token[-3] != "A" else "B") + done.token[-2:]
        for bad_token in (flipped, "", done.token + "x"):
            with pytest.raises(Unauthorized):
                p.portal_me(bad_token)
        with SdkClient(srv.url, other) as p2, pytest.raises(Unauthorized):
            p2.portal_me(done.token)
        # The portal routes are the portal's: an admin key is not one.
        with SdkClient(srv.url, admin) as a, pytest.raises(Forbidden):
            a.portal_sign_in("pat", PASSWORD)
    events = [json.loads(x) for x in cli(dd, "audit", "--json").stdout.splitlines()]
    signed = [(e["action"], e["result"], e["user"]) for e in events if e["client"] == "portal"]
    assert ("portal.sign_in", "rejected", "pat") in signed
    assert ("portal.sign_in", "ok", "pat") in signed
    assert ("authenticate", "accepted", "pat") in signed
    assert PASSWORD not in cli(dd, "audit").stdout and PASSWORD not in srv.log.read_text()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    path=st.sampled_from(
        [
            "/v1/portal/sign-in",
            "/v1/portal/second-factor",
            "/v1/portal/me",
            "/v1/portal/me/totp",
            "/v1/portal/me/totp/confirm",
            "/v1/portal/me/methods/m0",
            "/v1/portal/me/devices/activation",
            "/v1/portal/me/backup-codes",
            "/v1/portal/me/sign-ins",
            "/v1/portal/passkey/options",
            "/v1/portal/passkey",
            "/v1/portal/me/passkeys/options",
            "/v1/portal/me/passkeys",
            "/v1/portal/me/phone",
            "/v1/portal/me/bypass",
            "/v1/portal/me/default",
            "/v1/portal/me/sign-out-everywhere",
        ]
    ),
    verb=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    body=bodies,
    # What an HTTP client can send as a header value: printable ASCII, no outer blanks.
    session=st.text(max_size=80).filter(lambda t: t.isascii() and t.isprintable()).map(str.strip),
)
def test_whatever_the_portal_sends_it_gets_json_and_never_a_500(
    portal_node: tuple[str, str], path: str, verb: str, body: bytes, session: str
) -> None:
    url, key = portal_node
    headers = {"Authorization": f"Bearer {key}", "X-OpenMFA-Session": session}
    r = httpx.request(verb, url + path, content=body, headers=headers, timeout=10)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 204:
        return
    payload = r.json()
    if r.status_code >= 400:
        assert payload["code"] and payload["message"]
    else:
        assert payload.get("token", "") == ""  # random input never signs anyone in


@pytest.fixture(scope="module")
def portal_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    dd = tmp_path_factory.mktemp("portal-fuzz") / "node"
    init(dd)
    cli(dd, "user", "add", "fuzz")
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv:
        yield srv.url, key
        assert "Traceback" not in srv.log.read_text()


def test_guessing_passwords_at_the_portal_locks_the_user(tmp_path: Path) -> None:
    """Wrong portal passwords count toward the core lockout like wrong codes; a locked user
    gets no ticket even with the right password (it is not checked), until an admin unlocks."""
    dd = tmp_path / "node"
    init(dd)
    cfg = dd / "server.toml"
    cfg.write_text(cfg.read_text().replace("lockout_threshold = 10", "lockout_threshold = 3"))
    cli(dd, "user", "add", "lee")
    subprocess.run(
        [OPENMFA, "user", "set-password", "lee", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, portal) as p:
        for _ in range(3):
            assert p.portal_sign_in("lee", "a wrong guess").reason == "wrong_password"
        locked = p.portal_sign_in("lee", PASSWORD)
        assert (locked.accepted, locked.reason, locked.ticket) == (False, "locked", "")
        events = [json.loads(x) for x in cli(dd, "audit", "--json").stdout.splitlines()]
        assert sum(e["action"] == "portal.sign_in" for e in events) == 3  # not the 4th
        cli(dd, "user", "unlock", "lee")
        assert p.portal_sign_in("lee", PASSWORD).accepted


def _signed_in(p: SdkClient, user: str, code: str) -> str:
    first = p.portal_sign_in(user, PASSWORD)
    assert first.accepted, first
    done = p.portal_second_factor(first.ticket, code)
    assert done.accepted, done
    return done.token


def test_a_signed_in_user_manages_their_own_methods_and_nobody_elses(tmp_path: Path) -> None:
    """With the session token only: an authenticator app is saved once its code is typed; the
    mobile app gets an activation code; backup codes are renewed; the user's sign-ins are
    listed; a method is removed; another user's method cannot be touched."""
    dd = tmp_path / "node"
    init(dd)
    for name in ("pat", "sam"):
        cli(dd, "user", "add", name)
    subprocess.run(
        [OPENMFA, "user", "set-password", "pat", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "pat", "totp", "--secret", SEED, "--no-qr")
    added_for_sam = cli(dd, "method", "add", "sam", "totp", "--no-qr").stdout
    sam_method = added_for_sam.split("method id:")[1].split()[0]
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, portal) as p:
        session = _signed_in(p, "pat", oathtool("--totp", "-b", SEED))
        offer = p.portal_totp_start(session, "laptop")
        assert offer.secret in offer.otpauth_uri and "pat" in offer.otpauth_uri
        with pytest.raises(InvalidInput):  # not the app's code: nothing saved
            p.portal_totp_confirm(session, offer.offer, "000000")
        with pytest.raises(Unauthorized):  # a session token is not an offer
            p.portal_totp_confirm(session, session, oathtool("--totp", "-b", offer.secret))
        added = p.portal_totp_confirm(session, offer.offer, oathtool("--totp", "-b", offer.secret))
        assert added.kind == "totp" and added.label == "laptop"
        assert len(p.portal_me(session).methods) == 2
        code = p.portal_activation(session, "pat's phone")
        assert code.code and code.user == "pat"
        with pytest.raises(NotFound):  # sam's method is not pat's to remove
            p.portal_remove_method(session, sam_method)
        codes = p.portal_backup_codes(session)
        assert codes.backup_codes and codes.method.kind == "backup-codes"
        renewed = p.portal_backup_codes(session)  # the old codes stop working
        assert renewed.backup_codes and not set(renewed.backup_codes) & set(codes.backup_codes)
        kinds = [m.kind for m in p.portal_me(session).methods]
        assert kinds.count("backup-codes") == 1
        mine = p.portal_sign_ins(session)
        assert mine and all(e.user == "pat" for e in mine)
        assert mine[0].id > mine[-1].id  # newest first
        assert {e.action for e in mine} >= {"portal.sign_in", "authenticate"}
        backup = next(m for m in p.portal_me(session).methods if m.kind == "backup-codes")
        # The default method: the user's own, never backup codes, and the next sign-in
        # says which kind to offer first.
        with pytest.raises(NotFound):
            p.portal_set_default(session, sam_method)
        with pytest.raises(InvalidInput):
            p.portal_set_default(session, backup.id)
        assert p.portal_set_default(session, added.id).default_method == added.id
        assert p.portal_sign_in("pat", PASSWORD).prefer == "totp"
        p.portal_remove_method(session, backup.id)
        p.portal_remove_method(session, added.id)
        left = [m.id for m in p.portal_me(session).methods]
        assert len(left) == 1 and added.id not in left, left
        assert p.portal_me(session).user.default_method == ""  # the removed default: none
        assert p.portal_sign_in("pat", PASSWORD).prefer == ""
        # Sign out everywhere: every token of pat's issued before ends, on any portal key.
        spare = p.portal_backup_codes(session).backup_codes
        other = _signed_in(p, "pat", spare[0])
        p.portal_sign_out_everywhere(session)
        for ended in (session, other):
            with pytest.raises(Unauthorized, match="signed out everywhere"):
                p.portal_me(ended)
        fresh = _signed_in(p, "pat", spare[1])
        assert p.portal_me(fresh).user.name == "pat"  # a new sign-in works again
    assert sam_method in cli(dd, "method", "list", "sam").stdout  # untouched
    audit = cli(dd, "audit", "--user", "pat").stdout
    assert "method.add" in audit and "method.remove" in audit and "device.activation" in audit
    assert "user.default_method" in audit and "user.sign_out_everywhere" in audit


def test_passkey_phone_and_bypass_calls_refuse_what_is_wrong(tmp_path: Path) -> None:
    """A signed-in user's passkey registration refuses forged or broken browser answers and a
    challenge that is not this session's; the phone number must be a real one; a bypass is
    refused where the node offers none. Nothing is saved by any of them."""
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "pat")
    subprocess.run(
        [OPENMFA, "user", "set-password", "pat", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "pat", "totp", "--secret", SEED, "--no-qr")
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    origin = "https://portal.example.org"
    with server(dd) as srv, SdkClient(srv.url, portal) as p:
        session = _signed_in(p, "pat", oathtool("--totp", "-b", SEED))
        offer = p.portal_passkey_register_options(session, origin)
        options = json.loads(offer.options)
        assert options["rp"]["id"] == "portal.example.org"
        assert options["authenticatorSelection"]["userVerification"] == "required"
        for credential in (
            "{}",
            "not json",
            json.dumps({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}),
            json.dumps(
                {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                 "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}
            ),
        ):  # fmt: skip
            with pytest.raises(InvalidInput):
                p.portal_passkey_register(session, offer.challenge, credential, "laptop")
        with pytest.raises(Unauthorized):  # a session token is not a challenge
            p.portal_passkey_register(session, session, "{}", "laptop")
        ticket = p.portal_sign_in("pat", PASSWORD).ticket
        with pytest.raises(InvalidInput, match="no passkey"):
            p.portal_passkey_options(ticket, origin)
        with pytest.raises(InvalidInput, match="not this sign-in's"):
            p.portal_passkey(ticket, offer.challenge, "{}")  # a registration's challenge
        for number in ("12", "+999 1234", "call me"):
            with pytest.raises(InvalidInput):
                p.portal_set_phone(session, number)
        assert p.portal_set_phone(session, "+31 6 12345678").phone == "+31612345678"
        assert p.portal_set_phone(session, "").phone == ""
        with pytest.raises(Forbidden, match="bypass"):
            p.portal_bypass(session)
        assert [m.kind for m in p.portal_me(session).methods] == ["totp"]


def test_changes_need_a_recent_sign_in(tmp_path: Path) -> None:
    """A session keeps reading, but adding or removing a method asks for a sign-in of the last
    ``[portal] reauth_minutes``; signing in again (a new code) opens it again."""
    dd = tmp_path / "node"
    init(dd)
    with (dd / "server.toml").open("a") as f:
        f.write("\n[portal]\nreauth_minutes = 0.05\n")  # 3 s, so the test sees it pass
    cli(dd, "user", "add", "pat")
    subprocess.run(
        [OPENMFA, "user", "set-password", "pat", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "pat", "hotp", "--secret", SEED, "--no-qr")  # a code per sign-in
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, portal) as p:
        session = _signed_in(p, "pat", oathtool("-b", "-c", "0", SEED))
        deadline = time.monotonic() + 30
        while True:
            try:
                p.portal_totp_start(session)
            except Reauthenticate as exc:
                assert "sign in again" in exc.message
                break
            assert time.monotonic() < deadline, "a change never asked for re-authentication"
            time.sleep(0.2)
        assert p.portal_me(session).user.name == "pat"
        again = _signed_in(p, "pat", oathtool("-b", "-c", "1", SEED))
        try:
            assert p.portal_totp_start(again).secret
        except Reauthenticate:
            # 3 s may pass between the sign-in and this call on a loaded machine: what
            # matters is that a fresh sign-in opens changes, so try once more at once.
            again = _signed_in(p, "pat", oathtool("-b", "-c", "2", SEED))
            assert p.portal_totp_start(again).secret
