"""EAP (PEAP-MSCHAPv2, EAP-TTLS/PAP) judged by eapol_test, wpa_supplicant's own EAP peer, with
a real FreeRADIUS as the upstream that holds the passwords and terminates the TLS tunnels, and
OpenMFA relaying the conversation between them and asking for a push before it answers.

First the judge itself: the upstream alone accepts the right password with MPPE keys eapol_test
agrees with and names the inner user; and eapol_test fails an Access-Accept whose MPPE keys were
passed on without being re-encrypted for its own secret (what a relay must not do). Then the
same conversations through OpenMFA, the user's phone approving, denying or not answering."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .freeradius_upstream import EapMethod, EapolResult, Upstream, eapol_test_conf
from .freeradius_upstream import run_eapol_test as eapol_test
from .relay_site import RelaySite, relay_site

pytestmark = pytest.mark.e2e

USERS = {
    "alice": "alice-upstream-pw",
    "bob": "bob-upstream-pw",
    "carol": "carol-upstream-pw",
    "dave": "dave-upstream-pw",
}
REPLY = {"Class": "vpn-staff", "Filter-Id": "staff", "Session-Timeout": "3600"}
METHODS: list[EapMethod] = ["peap", "ttls-pap", "tls"]
SENT_USER_NAME = re.compile(
    r"^RADIUS message: code=1 .*\n(?:\s+Attribute .*\n(?:\s+Value: .*\n)?)*?"
    r"\s+Attribute 1 \(User-Name\) length=\d+\n\s+Value: '([^']*)'",
    re.M,
)
"""The User-Name of each Access-Request in eapol_test's output."""


SHORT_HOLD = "127.0.0.2"
"""A second NAS, whose requests are held 2 s at most (eapol_test -A: its source address)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelaySite]:
    with relay_site(
        tmp_path_factory.mktemp("relay"),
        USERS,
        hold_seconds=20,
        clients={SHORT_HOLD: 2},
        upstream_reply=REPLY,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def upstream(site: RelaySite) -> Upstream:
    return site.upstream


def peer(folder: Path, method: EapMethod, user: str, password: str, upstream: Upstream) -> Path:
    """eapol_test's configuration for ``user``: with ``password`` (PEAP, TTLS), or for EAP-TLS
    ``user``'s own certificate when ``password`` is theirs, else one made for someone else."""
    name = user if password == USERS.get(user) else "mallory"
    return eapol_test_conf(
        folder / f"{method}-{user}-{name}.conf",
        method,
        user,
        password,
        ca_cert=upstream.ca,
        client_cert=upstream.client_certificate(name) if method == "tls" else None,
    )


@pytest.mark.parametrize("method", METHODS)
def test_the_upstream_alone(upstream: Upstream, method: EapMethod, tmp_path: Path) -> None:
    right = eapol_test(peer(tmp_path, method, "alice", USERS["alice"], upstream), upstream.port,
                       upstream.secret, 15)  # fmt: skip
    assert right.success and right.mppe_ok, right.stdout[-4000:] + upstream.log()[-4000:]
    # the tunnels' outer identity was anonymous; the Access-Accept names the inner user
    outer = "alice" if method == "tls" else "anonymous"
    assert set(re.findall(SENT_USER_NAME, right.stdout)) == {outer}
    assert right.accept["User-Name"] == ["alice"]
    assert right.accept["Class"] == [b"vpn-staff".hex()]  # through the tunnel too

    wrong = eapol_test(peer(tmp_path, method, "alice", "not-it", upstream), upstream.port,
                       upstream.secret, 15)  # fmt: skip
    assert not wrong.success and not wrong.mppe_ok and not wrong.accept
    assert "(Access-Reject)" in wrong.stdout


def test_the_upstream_alone_mschapv2(upstream: Upstream) -> None:
    """MS-CHAPv2 without EAP (RFC 2548 attributes sent as octets by radclient, computed by the
    tests' own RFC 2759 peer): MS-CHAP2-Success verifies, the MPPE keys are RFC 3079's."""
    from tests.radius import ms_chap_peer as peer

    for password, accepted in ((USERS["bob"], True), ("not-it", False)):
        challenge, peer_challenge = os.urandom(16), os.urandom(16)
        ch, response = peer.build_request("bob", password, challenge, peer_challenge, 9)
        proc = subprocess.run(
            ["radclient", "-x", "-t", "3", "-r", "2", f"127.0.0.1:{upstream.port}", "auth",
             upstream.secret],
            input=f'User-Name = "bob"\nMS-CHAP-Challenge = 0x{ch.hex()}\n'
            f"MS-CHAP2-Response = 0x{response.hex()}\nMessage-Authenticator = 0x00\n",
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        reply = dict(re.findall(r"^\s+(\S+) = (.+)$", proc.stdout.split("Received", 1)[-1], re.M))
        if not accepted:
            assert "Received Access-Reject" in proc.stdout, proc.stdout
            continue
        assert "Received Access-Accept" in proc.stdout, proc.stdout + upstream.log()
        success = bytes.fromhex(reply["MS-CHAP2-Success"][2:])
        assert success[0] == 9
        nt_response = response[26:50]
        assert peer.check_authenticator_response(
            success[1:], password, nt_response, peer_challenge, challenge, "bob"
        )
        peer_send, peer_recv = peer.peer_start_keys(password, nt_response)
        assert bytes.fromhex(reply["MS-MPPE-Send-Key"][2:]) == peer_recv
        assert bytes.fromhex(reply["MS-MPPE-Recv-Key"][2:]) == peer_send


# --- the judge catches a relay that forgets to re-encrypt the keys ------------------------


def _with_ma(raw: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """``raw`` with its Message-Authenticator (RFC 3579 §3.2) computed for ``secret``, the
    header carrying ``authenticator`` while it is computed."""
    out, i = bytearray(raw), 20
    out[4:20] = authenticator
    while i < len(out):
        kind, length = out[i], out[i + 1]
        if kind == 80:
            out[i + 2 : i + 18] = bytes(16)
            out[i + 2 : i + 18] = hmac.new(secret, bytes(out), hashlib.md5).digest()
        i += length
    return bytes(out)


def _careless_relay(
    listen: socket.socket, upstream: Upstream, nas_secret: bytes, stop: threading.Event
) -> None:
    """Relays one request at a time, re-signing both ways but passing MS-MPPE-*-Key on as the
    upstream encrypted them (for the upstream's secret)."""
    secret = upstream.secret.encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
        up.settimeout(5)
        listen.settimeout(0.2)
        while not stop.is_set():
            try:
                request, nas = listen.recvfrom(4096)
            except TimeoutError:
                continue
            up.sendto(_with_ma(request, secret, request[4:20]), ("127.0.0.1", upstream.port))
            reply = bytearray(_with_ma(up.recv(4096), nas_secret, request[4:20]))
            reply[4:20] = hashlib.md5(bytes(reply) + nas_secret).digest()  # noqa: S324 - RFC 2865 §3
            listen.sendto(bytes(reply), nas)


def test_the_judge_fails_keys_not_reencrypted(upstream: Upstream, tmp_path: Path) -> None:
    nas_secret = "nas-secret-not-the-upstreams"
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listen:
        listen.bind(("127.0.0.1", 0))
        relay = threading.Thread(
            target=_careless_relay, args=(listen, upstream, nas_secret.encode(), stop)
        )
        relay.start()
        try:
            conf = eapol_test_conf(
                tmp_path / "peap.conf", "peap", "alice", USERS["alice"], ca_cert=upstream.ca
            )
            result = eapol_test(conf, listen.getsockname()[1], nas_secret, 15)
        finally:
            stop.set()
            relay.join(timeout=10)
    # the conversation went through (an Access-Accept arrived, signed right) ...
    assert result.accept["User-Name"] == ["alice"], result.stdout[-4000:]
    # ... but the keys did not decrypt to the MSK the peer derived
    assert not result.mppe_ok and not result.success
    assert re.search(r"^MPPE keys OK: 0\s+mismatch: 1", result.stdout, re.M)


# --- through OpenMFA ------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_eap_through_openmfa_asks_the_phone(
    site: RelaySite, method: EapMethod, tmp_path: Path
) -> None:
    """Approved: eapol_test's SUCCESS, so the MPPE keys reached it re-encrypted for the NAS's
    secret; denied: a reject; a wrong password: a reject and no push at all."""
    user = "carol"
    phone = site.answering(user, "approve")
    pushes, shown = len(site.push_requests(user)), len(phone.shown)

    def run(password: str) -> EapolResult:
        conf = peer(tmp_path, method, user, password, site.upstream)
        return eapol_test(conf, site.radius_port, site.nas_secret, 40)

    approved = run(USERS[user])
    assert approved.success and approved.mppe_ok, (
        approved.stdout[-4000:] + site.node.log.read_text()[-4000:]
    )
    # the person asked, named for the NAS's accounting (RFC 2865 §5.1), though the allow-list
    # does not name User-Name (and the tunnels' outer identity was "anonymous")
    assert approved.accept["User-Name"] == [user]
    # what the upstream told the NAS passes (the default allow-list)
    assert approved.accept["Class"] == [b"vpn-staff".hex()]
    assert "Attr-11" in approved.accept and "Session-Timeout" in approved.accept  # Filter-Id
    assert site.push_requests(user)[pushes:] == [("radius:nas", "accepted")]

    phone.decision = "deny"
    denied = run(USERS[user])
    assert not denied.success and not denied.accept and "(Access-Reject)" in denied.stdout
    assert site.push_requests(user)[pushes + 1 :] == [("radius:nas", "denied")]

    phone.decision = "approve"
    wrong = run("not-the-password")
    assert not wrong.success and not wrong.accept and "(Access-Reject)" in wrong.stdout
    assert len(site.push_requests(user)) == pushes + 2  # no push for a wrong password
    assert len(phone.shown) == shown + 2


def test_eap_push_not_answered_within_the_hold_is_a_reject(site: RelaySite, tmp_path: Path) -> None:
    user = "dave"
    phone = site.answering(user, "ignore")
    conf = peer(tmp_path, "peap", user, USERS[user], site.upstream)
    result = eapol_test(conf, site.radius_port, site.nas_secret, 30, extra=("-A", SHORT_HOLD))
    assert not result.success and not result.accept, result.stdout[-4000:]
    assert "(Access-Reject)" in result.stdout
    assert [c for c, _ in site.push_requests(user)] == ["radius:nas-127-0-0-2"]
    assert len(phone.shown) == 1
