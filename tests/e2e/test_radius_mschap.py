"""MS-CHAPv2 (no EAP) through OpenMFA's RADIUS front end, judged by real software: radclient as
the VPN (it sends the MS-CHAPv2 request as octets, computed by the tests' own RFC 2759 peer, and
decrypts the MPPE keys of the answer with its own secret), a real FreeRADIUS as the upstream that
holds the passwords, and the reference authenticator as the phone that approves or declines.

Each refusal has its test: a wrong password (no push), a declined push, a client that has not
enabled MS-CHAPv2 or EAP, an MS-CHAP2-Response that cannot be read, a locked user (the upstream is
not asked), and an upstream that never answers (a reject and a log line, not a hang)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.radius import ms_chap_peer as peer

from .freeradius_upstream import Upstream, freeradius_upstream
from .helpers import Phone, Server, cli, free_port, init, server, wait_for
from .services import free_udp_port

pytestmark = pytest.mark.e2e

SECRET = "vpn-secret-mschap"
USERS = {"alice": "alice-upstream-pw", "bob": "bob-upstream-pw", "lola": "lola-upstream-pw"}
REPLY = {"Class": "vpn-staff", "Filter-Id": "staff", "Reply-Message": "upstream says hi"}
# Gateways by source address: 127.0.0.1 does MS-CHAPv2 (Class and Filter-Id pass, nothing
# else), 127.0.0.2 is a PAP-only client, 127.0.0.3 holds one second only, 127.0.0.4 has Active
# Directory check MS-CHAPv2 (--primary ntlm).
RELAY = ["--primary", "radius", "--push", "hold", "--mschap", "yes"]
GATEWAYS = (
    ("vpn", "127.0.0.1", [*RELAY, "--reply-attributes", "Class,Filter-Id"]),
    ("pap", "127.0.0.2", []),
    ("vpn-short", "127.0.0.3", [*RELAY, "--hold-seconds", "1"]),
    ("vpn-ad", "127.0.0.4", ["--primary", "ntlm", "--mschap", "yes"]),
)
DOMAIN_USERS = {"dora": "dora-domain-pw"}
STAND_IN = """#!{python}
# ntlm_auth as a domain member runs it (--helper-protocol=ntlm-server-1 --allow-mschapv2, the
# request on standard input), answering from DOMAIN_USERS with the tests' own RFC 2759 peer:
# the User-Session-Key (the PasswordHashHash) or a refusal. It notes its command line and the
# request's Username and NT-Domain.
import sys
sys.path.insert(0, {root!r})
from tests.radius import ms_chap_peer as peer
users = {users!r}
request = {{}}
for line in sys.stdin:
    line = line.rstrip("\\n")
    if line == ".":
        break
    name, _, value = line.partition(": ")
    request[name] = value
with open({argv!r}, "a") as f:
    seen = [k + ": " + request.get(k, "") for k in ("Username", "NT-Domain")]
    f.write(" ".join(sys.argv[1:]) + " | " + " | ".join(seen) + "\\n")
password = users.get(request.get("Username"))
if password is not None:
    key = peer.nt_password_hash(password)
    challenge = bytes.fromhex(request["LANMAN-Challenge"])
    nt = bytes.fromhex(request["NT-Response"])
    if peer.challenge_response(challenge, key) == nt:
        print("Authenticated: Yes")
        print("User-Session-Key: " + peer.hash_nt_password_hash(key).hex().upper())
        print(".")
        sys.exit(0)
print("Authenticated: No")
print("Authentication-Error: The attempted logon is invalid. This is either due to a bad "
      "username or authentication information.")
print(".")
"""


@dataclass
class Site:
    dd: Path
    node: Server
    port: int
    upstream: Upstream | None

    def phone(self, user: str, tmp: Path) -> Phone:
        code = json.loads(cli(self.dd, "device", "activate", user, "--json").stdout)
        phone = Phone(tmp / f"{user}-{time.monotonic_ns()}.json")
        phone.run("activate", code["url"], code["code"])
        return phone

    def upstream_logins(self, user: str) -> int:
        """How many times the upstream judged ``user``'s password (its auth log)."""
        assert self.upstream is not None
        return len(re.findall(rf"Login (?:OK|incorrect).*\[{user}", self.upstream.log()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("mschap")
    with freeradius_upstream(base / "upstream", USERS, reply=REPLY) as upstream:
        dd = base / "node"
        dd.mkdir()
        port = free_port()
        with (dd / "server.toml").open("a") as f:  # before init, which keeps it
            f.write(
                f'\n[radius_upstream]\naddress = "127.0.0.1:{upstream.port}"\n'
                f'secret = "{upstream.secret}"\n'
                f'[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n'
                "min_gap_seconds = 0.0\n[policy]\nlockout_threshold = 3\n"
            )
        init(dd)
        stand_in = base / "ntlm_auth"
        stand_in.write_text(
            STAND_IN.format(
                python=sys.executable,
                root=str(Path(__file__).parents[2]),
                users=DOMAIN_USERS,
                argv=str(base / "ntlm_auth.argv"),
            )
        )
        stand_in.chmod(0o755)
        with (dd / "server.toml").open("a") as f:
            f.write(f'[ntlm]\nntlm_auth = "{stand_in}"\ndomain = "EXAMPLE"\n')
        for name, address, options in GATEWAYS:
            cli(dd, "radius", "client", "add", name, "--address", address, "--secret", SECRET,
                *options)  # fmt: skip
        listed = cli(dd, "radius", "client", "list").stdout
        assert "mschap" in listed and "reply=Class,Filter-Id" in listed, listed
        for user in [*USERS, *DOMAIN_USERS]:
            cli(dd, "user", "add", user)
        udp = free_udp_port()
        with server(dd, port=port, radius=f"127.0.0.1:{udp}") as node:
            yield Site(dd, node, udp, upstream)
            assert "Traceback" not in node.log.read_text()


@dataclass
class Sent:
    challenge: bytes
    peer_challenge: bytes
    response: bytes
    ident: int


def mschap_request(user: str, password: str, ident: int = 7) -> tuple[Sent, dict[str, str]]:
    """The peer's MS-CHAPv2 request (RFC 2759), as radclient's attribute lines."""
    challenge, peer_challenge = os.urandom(16), os.urandom(16)
    ch, response = peer.build_request(user, password, challenge, peer_challenge, ident)
    attrs = {
        "User-Name": user,
        "MS-CHAP-Challenge": "0x" + ch.hex(),
        "MS-CHAP2-Response": "0x" + response.hex(),
        "Calling-Station-Id": "198.51.100.9",
    }
    return Sent(challenge, peer_challenge, response, ident), attrs


def radclient_start(
    port: int, attrs: dict[str, str], *, source: str = "127.0.0.1", timeout: float = 20
) -> subprocess.Popen[str]:
    """radclient as the VPN at ``source``: sends once, waits ``timeout`` s, prints the reply."""
    lines = [f'{k} = "{v}"' if not v.startswith("0x") else f"{k} = {v}" for k, v in attrs.items()]
    lines += [f"Packet-Src-IP-Address = {source}", "Message-Authenticator = 0x00"]
    proc = subprocess.Popen(
        ["radclient", "-x", "-t", str(timeout), "-r", "1", f"127.0.0.1:{port}", "auth", SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.close()
    return proc


def result(proc: subprocess.Popen[str]) -> tuple[str | None, dict[str, list[str]], str]:
    """(reply type or None, its attributes by name, radclient's whole output)."""
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    proc.wait(timeout=120)
    m = re.search(r"^Received (\S+) Id", out, re.M)
    if not m:
        return None, {}, out
    attrs: dict[str, list[str]] = {}
    for k, v in re.findall(r"^\s+(\S+) = (.+)$", out[m.end() :], re.M):
        attrs.setdefault(k, []).append(v.strip('"'))
    return m.group(1), attrs, out


def radclient(
    site: Site, attrs: dict[str, str], *, source: str = "127.0.0.1", timeout: float = 20
) -> tuple[str | None, dict[str, list[str]], str]:
    return result(radclient_start(site.port, attrs, source=source, timeout=timeout))


def octets(value: str) -> bytes:
    assert value.startswith("0x"), value
    return bytes.fromhex(value[2:])


def ms_error(value: str) -> tuple[int, str]:
    """An MS-CHAP-Error as radclient prints it (a string, its Ident octet escaped): (Ident,
    the RFC 2759 §6 failure text)."""
    m = re.fullmatch(r"\\(\d{3})(.*)", value)
    assert m, value
    return int(m.group(1), 8), m.group(2)


def test_right_password_and_approved_push(site: Site, tmp_path: Path) -> None:
    phone = site.phone("alice", tmp_path)
    sent, attrs = mschap_request("alice", USERS["alice"])
    vpn = radclient_start(site.port, attrs)
    (request,) = phone.pending(wait=15)
    # approve-only: such a VPN shows no number, so the phone asks for none
    assert request["numbered"] is False and request["client"] == "radius:vpn"
    assert vpn.poll() is None  # held until the phone answers
    phone.run("approve", str(request["id"]))
    kind, reply, out = result(vpn)
    assert kind == "Access-Accept", out + site.node.log.read_text()[-3000:]
    # MS-CHAP2-Success: the upstream's authenticator response, which the peer verifies
    success = octets(reply["MS-CHAP2-Success"][0])
    assert success[0] == sent.ident
    nt_response = sent.response[26:50]
    assert peer.check_authenticator_response(
        success[1:], USERS["alice"], nt_response, sent.peer_challenge, sent.challenge, "alice"
    )
    # MPPE keys: radclient decrypted them with ITS secret and ITS request authenticator, and
    # they are the keys of RFC 3079 the peer derives itself (the server's send key is the
    # peer's receive key)
    peer_send, peer_recv = peer.peer_start_keys(USERS["alice"], nt_response)
    assert octets(reply["MS-MPPE-Send-Key"][0]) == peer_recv
    assert octets(reply["MS-MPPE-Recv-Key"][0]) == peer_send
    assert "MS-MPPE-Encryption-Policy" in reply and "MS-MPPE-Encryption-Types" in reply
    # the allow-list: Class and Filter-Id pass; the upstream's Reply-Message does not, and
    # OpenMFA adds none of its own
    assert reply["Class"] == ["0x" + b"vpn-staff".hex()] and reply["Filter-Id"] == ["staff"]
    assert "Reply-Message" not in reply and "Message-Authenticator" in reply
    assert phone.pending() == []


def test_wrong_password_rejects_without_a_push(site: Site, tmp_path: Path) -> None:
    phone = site.phone("bob", tmp_path)
    before = site.upstream_logins("bob")
    _, attrs = mschap_request("bob", "not-the-password", ident=3)
    kind, reply, out = radclient(site, attrs)
    assert kind == "Access-Reject", out
    # the upstream's MS-CHAP-Error (RFC 2759 §6: E=691) reaches the VPN
    ident, error = ms_error(reply["MS-CHAP-Error"][0])
    assert ident == 3 and error.startswith("E=691 ")
    assert "Reply-Message" not in reply
    assert site.upstream_logins("bob") == before + 1
    assert phone.pending(wait=2) == []  # no push was sent
    audit = cli(site.dd, "audit", "--user", "bob").stdout
    assert "wrong_password" in audit


def test_declined_push_rejects(site: Site, tmp_path: Path) -> None:
    phone = site.phone("bob", tmp_path)
    _, attrs = mschap_request("bob", USERS["bob"], ident=5)
    vpn = radclient_start(site.port, attrs)
    (request,) = phone.pending(wait=15)
    phone.run("deny", str(request["id"]))
    kind, reply, out = result(vpn)
    assert kind == "Access-Reject", out
    ident, error = ms_error(reply["MS-CHAP-Error"][0])
    assert ident == 5 and error.startswith("E=691 R=0 C=")
    assert "MS-MPPE-Send-Key" not in reply and "MS-CHAP2-Success" not in reply


def test_unanswered_push_rejects_within_the_hold(site: Site, tmp_path: Path) -> None:
    phone = site.phone("bob", tmp_path)
    _, attrs = mschap_request("bob", USERS["bob"])
    kind, reply, out = radclient(site, attrs, source="127.0.0.3")  # holds 1 s
    assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
    assert len(phone.pending()) <= 1


def test_a_client_without_mschap_or_eap_is_refused_and_told_how(site: Site) -> None:
    _, attrs = mschap_request("alice", USERS["alice"])
    kind, reply, out = radclient(site, attrs, source="127.0.0.2")
    assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
    # EAP from it: an EAP-Failure with the Identifier of its EAP-Response/Identity
    identity = bytes([2, 42]) + (9).to_bytes(2, "big") + b"\x01alice"
    kind, reply, out = radclient(
        site, {"User-Name": "alice", "EAP-Message": "0x" + identity.hex()}, source="127.0.0.2"
    )
    assert kind == "Access-Reject", out
    assert reply["EAP-Message"] == ["0x04" + "2a" + "0004"], out
    log = site.node.log.read_text()
    assert "--mschap yes" in log and "--eap relay" in log


def test_an_unreadable_response_is_rejected(site: Site) -> None:
    sent, attrs = mschap_request("alice", USERS["alice"])
    attrs["MS-CHAP2-Response"] = "0x" + sent.response[:30].hex()  # 30 octets, not 50
    before = site.upstream_logins("alice")
    kind, _, out = radclient(site, attrs)
    assert kind == "Access-Reject", out
    attrs = dict(attrs, **{"MS-CHAP2-Response": "0x" + sent.response.hex()})
    del attrs["MS-CHAP-Challenge"]
    kind, _, out = radclient(site, attrs)
    assert kind == "Access-Reject", out
    assert site.upstream_logins("alice") == before  # neither was relayed
    assert "cannot be read" in site.node.log.read_text()


def test_a_locked_user_is_rejected_without_asking_the_upstream(site: Site, tmp_path: Path) -> None:
    phone = site.phone("lola", tmp_path)
    for _ in range(3):  # [policy] lockout_threshold: wrong passwords count toward it
        _, attrs = mschap_request("lola", "guess")
        assert radclient(site, attrs)[0] == "Access-Reject"
    asked = site.upstream_logins("lola")
    assert asked == 3
    refused = locked_rows(site, "lola")
    _, attrs = mschap_request("lola", USERS["lola"])
    kind, reply, out = radclient(site, attrs)
    assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
    assert site.upstream_logins("lola") == asked  # the right password was not even relayed
    assert phone.pending(wait=2) == []
    assert locked_rows(site, "lola") == refused + 1


def locked_rows(site: Site, user: str) -> int:
    """The audit trail's refusals of ``user`` for being locked."""
    audit = cli(site.dd, "audit", "--user", user).stdout
    return len(re.findall(rf"authenticate\s+rejected\s+locked\s+user={user} ", audit))


def test_a_silent_upstream_is_a_reject_and_a_log_line(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    dd.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes the requests, answers none
        with (dd / "server.toml").open("a") as f:
            f.write(
                f'\n[radius_upstream]\naddress = "127.0.0.1:{silent.getsockname()[1]}"\n'
                'secret = "upstream-secret"\ntimeout_seconds = 1\n'
            )
        init(dd)
        cli(dd, "radius", "client", "add", "vpn", "--address", "127.0.0.1", "--secret", SECRET,
            "--primary", "radius", "--push", "hold", "--mschap", "yes")  # fmt: skip
        cli(dd, "user", "add", "alice")
        udp = free_udp_port()
        with server(dd, radius=f"127.0.0.1:{udp}") as node:
            _, attrs = mschap_request("alice", USERS["alice"])
            kind, reply, out = result(radclient_start(udp, attrs, timeout=15))
            assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
            silent.settimeout(0)
            sent = []
            while True:
                try:
                    sent.append(silent.recv(4096))
                except BlockingIOError:
                    break
            # sent twice, the same request (a retransmission the upstream would recognise)
            assert len(sent) == 2 and sent[0] == sent[1]
            wait_for(lambda: "did not answer" in node.log.read_text(), "the log line")


def test_active_directory_checks_mschapv2_through_ntlm_auth(site: Site, tmp_path: Path) -> None:
    """--primary ntlm: the domain (ntlm_auth, here a stand-in that knows dora's password)
    checks the response; OpenMFA makes the MS-CHAP2-Success and MPPE keys from the
    PasswordHashHash it returns, after an approved push."""
    phone = site.phone("dora", tmp_path)
    sent, attrs = mschap_request("EXAMPLE\\dora", DOMAIN_USERS["dora"], ident=11)
    vpn = radclient_start(site.port, attrs, source="127.0.0.4")
    (request,) = phone.pending(wait=15)  # the person is dora, without the domain
    assert request["numbered"] is False and request["client"] == "radius:vpn-ad"
    phone.run("approve", str(request["id"]))
    kind, reply, out = result(vpn)
    assert kind == "Access-Accept", out + site.node.log.read_text()[-3000:]
    success = octets(reply["MS-CHAP2-Success"][0])
    nt_response = sent.response[26:50]
    assert success[0] == 11 and peer.check_authenticator_response(
        success[1:], DOMAIN_USERS["dora"], nt_response, sent.peer_challenge, sent.challenge,
        "EXAMPLE\\dora",
    )  # fmt: skip
    peer_send, peer_recv = peer.peer_start_keys(DOMAIN_USERS["dora"], nt_response)
    assert octets(reply["MS-MPPE-Send-Key"][0]) == peer_recv
    assert octets(reply["MS-MPPE-Recv-Key"][0]) == peer_send
    argv, *request = (site.dd.parent / "ntlm_auth.argv").read_text().splitlines()[-1].split(" | ")
    assert argv.split() == ["--helper-protocol=ntlm-server-1", "--allow-mschapv2"]
    assert request == ["Username: dora", "NT-Domain: EXAMPLE"]  # on stdin, not argv
    # A wrong password: the domain's refusal, no push.
    _, attrs = mschap_request("EXAMPLE\\dora", "not-it", ident=12)
    kind, reply, out = radclient(site, attrs, source="127.0.0.4")
    assert kind == "Access-Reject", out
    ident, error = ms_error(reply["MS-CHAP-Error"][0])
    assert ident == 12 and error.startswith("E=691 ")
    assert phone.pending(wait=2) == []
    # PAP to such a client: refused (ntlm_auth is never given a password)
    kind, _, out = radclient(
        site, {"User-Name": "dora", "User-Password": "dora-domain-pw"}, source="127.0.0.4"
    )
    assert kind == "Access-Reject", out
    assert "checks MS-CHAPv2 only" in site.node.log.read_text()


@pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("samba", "ntlm_auth", "unshare")),
    reason="needs root (network and mount namespaces), samba, ntlm_auth and unshare",
)
def test_a_samba_domain_controller_checks_mschapv2_for_the_node(tmp_path: Path) -> None:
    """--primary ntlm against a real Active Directory (a Samba DC with its winbindd, asked
    through Samba's own ntlm_auth): the whole way, from radclient to the phone and back."""
    from .directory_server import samba_dc
    from .test_radius_ntlm import ntlm_auth_for

    password = "Am1r-Passw0rd!"
    with samba_dc(tmp_path / "samba", winbind=True) as dc:
        dc.tool("user", "create", "amir", password)
        dd = tmp_path / "node"
        dd.mkdir()
        port = free_port()
        (dd / "server.toml").write_text(
            f'[ntlm]\nntlm_auth = "{ntlm_auth_for(dc, tmp_path)}"\n'
            f'smb_conf = "{dc.workdir / "etc" / "smb.conf"}"\ntimeout_seconds = 20\n'
            f'[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n'
            "min_gap_seconds = 0.0\n"
        )
        init(dd)
        cli(dd, "radius", "client", "add", "vpn", "--address", "127.0.0.1", "--secret", SECRET,
            "--primary", "ntlm", "--mschap", "yes")  # fmt: skip
        cli(dd, "user", "add", "amir")
        udp = free_udp_port()
        with server(dd, port=port, radius=f"127.0.0.1:{udp}") as node:
            site = Site(dd, node, udp, None)
            phone = site.phone("amir", tmp_path)
            sent, attrs = mschap_request("EXAMPLE\\amir", password)
            vpn = radclient_start(udp, attrs, timeout=40)
            (request,) = phone.pending(wait=40)
            phone.run("approve", str(request["id"]))
            kind, reply, out = result(vpn)
            assert kind == "Access-Accept", out + node.log.read_text()[-3000:]
            nt_response = sent.response[26:50]
            assert peer.check_authenticator_response(
                octets(reply["MS-CHAP2-Success"][0])[1:], password, nt_response,
                sent.peer_challenge, sent.challenge, "amir",
            )  # fmt: skip
            peer_send, peer_recv = peer.peer_start_keys(password, nt_response)
            assert octets(reply["MS-MPPE-Send-Key"][0]) == peer_recv
            assert octets(reply["MS-MPPE-Recv-Key"][0]) == peer_send
            _, attrs = mschap_request("EXAMPLE\\amir", "wrong-password")
            kind, reply, out = result(radclient_start(udp, attrs, timeout=40))
            assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
            assert phone.pending(wait=2) == []
