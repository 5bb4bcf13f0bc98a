"""The RADIUS front end judged by real clients: radclient (FreeRADIUS), pamtester with
pam_radius_auth, against real first-factor backends (OpenLDAP slapd, FreeRADIUS)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from openmfa.farm import membership
from openmfa.farm.peers import call
from openmfa.radius import packet as p

from .helpers import OPENMFA, Server, cli, init, oathtool, secret_of, server
from .services import LDAP_BASE, free_udp_port, freeradius, slapd

SECRET = "gateway-secret-1"


@dataclass
class Node:
    dd: Path
    token: str
    srv: Server
    port: int
    seeds: dict[str, str]

    def code(self, user: str, offset: int = 0) -> str:
        return oathtool("--totp", "-b", self.seeds[user], "-N", f"{offset:+d} seconds")

    def stats(self) -> dict[str, int]:
        r = httpx.get(
            self.srv.url + "/v1/radius/stats", headers={"Authorization": f"Bearer {self.token}"}
        )
        counters: dict[str, int] = r.json()["counters"]
        return counters

    def gateway(self, **options: str) -> None:
        """(Re)register the one RADIUS client (this host) with these options, and wait until
        the running server has it."""
        cli(self.dd, "radius", "client", "remove", "gw", expect=None)
        args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        address = options.pop("address", None) or "127.0.0.1/32"
        args = [a for a in args if not a.startswith("--address")]
        cli(
            self.dd,
            "radius",
            "client",
            "add",
            "gw",
            "--address",
            address,
            "--secret",
            SECRET,
            *args,
        )
        time.sleep(1.6)  # the server reloads its client list every second


def radclient(
    port: int,
    attrs: dict[str, str],
    *,
    command: str = "auth",
    secret: str = SECRET,
    ma: bool = True,
) -> tuple[str | None, dict[str, str]]:
    """Send one request with radclient; (reply type or None for no reply, reply attributes).
    It waits 3 s and sends once more (a first factor hashes a password: slow on a busy host)."""
    lines = [f'{k} = "{v}"' if not v.startswith("0x") else f"{k} = {v}" for k, v in attrs.items()]
    if ma:
        lines.append("Message-Authenticator = 0x00")
    proc = subprocess.run(
        ["radclient", "-x", "-t", "3", "-r", "2", f"127.0.0.1:{port}", command, secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    m = re.search(r"^Received (\S+) Id", proc.stdout, re.M)
    if not m:
        return None, {}
    reply = proc.stdout[m.end() :]
    found = dict(re.findall(r"^\s+(\S+) = (.+)$", reply, re.M))
    return m.group(1), {k: v.strip('"') for k, v in found.items()}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("radius")
    with (
        slapd(base / "ldap", {"carol": "carol-ldap-pw"}) as ldap_url,
        freeradius(base / "upstream", {"dave": "dave-upstream-pw"}) as upstream,
    ):
        dd = base / "node"
        dd.mkdir()
        (dd / "server.toml").write_text(f"""
[radius]
challenge_seconds = 3
[ldap]
url = "{ldap_url}"
bind_dn_template = "uid={{user}},ou=people,{LDAP_BASE}"
[radius_upstream]
address = "127.0.0.1:{upstream.port}"
secret = "upstream-secret"
""")
        token = init(dd)
        seeds = {}
        for user in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
            cli(dd, "user", "add", user)
            seeds[user] = secret_of(cli(dd, "method", "add", user, "totp", "--no-qr").stdout)
        for user in ("alice", "erin", "gina"):
            subprocess.run(
                [
                    str(Path(os.sys.executable).with_name("openmfa")),
                    "user",
                    "set-password",
                    user,
                    "--password-stdin",
                    "--data-dir",
                    str(dd),
                ],
                input=f"{user}-local-pw\n",
                text=True,
                check=True,
            )
        port = free_udp_port()
        with server(dd, radius=f"127.0.0.1:{port}") as srv:
            n = Node(dd, token, srv, port, seeds)
            n.gateway(primary="none")
            yield n


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a part's ``/metrics`` (0 when it has none yet)."""
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_otp_only_flow(node: Node) -> None:
    node.gateway(primary="none")
    radius = metric(
        node.srv.url, "openmfa_authentications_total", channel="radius", result="rejected"
    )
    accepts = metric(node.srv.url, "openmfa_radius_packets_total", counter="accept")
    code = node.code("alice")
    kind, attrs = radclient(node.port, {"User-Name": "alice", "User-Password": code})
    assert kind == "Access-Accept" and "Message-Authenticator" in attrs
    kind, attrs = radclient(node.port, {"User-Name": "alice", "User-Password": code})
    assert kind == "Access-Reject" and attrs["Reply-Message"] == "Verification failed"
    kind, _ = radclient(node.port, {"User-Name": "alice", "User-Password": "000000"})
    assert kind == "Access-Reject"
    kind, _ = radclient(node.port, {"User-Name": "nobody", "User-Password": "123456"})
    assert kind == "Access-Reject"
    audit = cli(node.dd, "audit", "--user", "alice").stdout
    assert "client=radius:gw" in audit and code not in audit
    # /metrics: the three refusals by channel, the accept among the RADIUS server's counters
    after = metric(
        node.srv.url, "openmfa_authentications_total", channel="radius", result="rejected"
    )
    assert after == radius + 3
    assert metric(node.srv.url, "openmfa_radius_packets_total", counter="accept") == accepts + 1


def test_message_authenticator_required_by_default(node: Node) -> None:
    node.gateway(primary="none")
    before = node.stats()
    kind, _ = radclient(
        node.port, {"User-Name": "bob", "User-Password": node.code("bob")}, ma=False
    )
    assert kind is None
    assert node.stats()["missing_authenticator"] >= before.get("missing_authenticator", 0) + 1
    node.gateway(primary="none", require_message_authenticator="no")
    kind, attrs = radclient(
        node.port, {"User-Name": "bob", "User-Password": node.code("bob")}, ma=False
    )
    assert kind == "Access-Accept" and "Message-Authenticator" in attrs  # always sent


def test_wrong_secret_and_unknown_client_are_dropped(node: Node) -> None:
    node.gateway(primary="none")
    before = node.stats()
    kind, _ = radclient(
        node.port, {"User-Name": "bob", "User-Password": "123456"}, secret="not-the-secret"
    )
    assert kind is None
    node.gateway(primary="none", address="192.0.2.0/24")
    kind, _ = radclient(node.port, {"User-Name": "bob", "User-Password": "123456"})
    assert kind is None
    after = node.stats()
    assert after["bad_authenticator"] > before.get("bad_authenticator", 0)
    assert after["unknown_client"] > before.get("unknown_client", 0)
    assert "dropped: request from 127.0.0.1" in node.srv.log.read_text()


def test_status_server(node: Node) -> None:
    node.gateway(primary="none")
    kind, attrs = radclient(node.port, {}, command="status")
    assert kind == "Access-Accept" and attrs["Reply-Message"] == "OpenMFA RADIUS is up"


def test_duplicates_get_the_cached_answer_not_a_second_verification(node: Node) -> None:
    node.gateway(primary="none")
    secret = SECRET.encode()
    auth = os.urandom(16)
    code = node.code("frank")
    raw = p.encode_request(
        p.ACCESS_REQUEST,
        42,
        [
            (p.USER_NAME, b"frank"),
            (p.USER_PASSWORD, p.hide_password(code.encode(), secret, auth)),
            (p.PROXY_STATE, b"proxy-hop"),
        ],
        secret,
        auth,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(raw, ("127.0.0.1", node.port))
        first = s.recv(4096)
        s.sendto(raw, ("127.0.0.1", node.port))
        second = s.recv(4096)
    assert first == second
    reply = p.verify_response(first, auth, secret)
    assert reply.code == p.ACCESS_ACCEPT and reply.all(p.PROXY_STATE) == [b"proxy-hop"]
    events = [
        ln
        for ln in cli(node.dd, "audit", "--user", "frank").stdout.splitlines()
        if "authenticate" in ln
    ]
    assert len(events) == 1


def test_malformed_packets_are_counted_and_survived(node: Node) -> None:
    node.gateway(primary="none")
    before = node.stats().get("malformed", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x01", b"\x01\x02\x00\xff" + bytes(16), os.urandom(300)):
            s.sendto(junk, ("127.0.0.1", node.port))
    time.sleep(0.3)
    assert node.stats()["malformed"] >= before + 3
    kind, _ = radclient(node.port, {}, command="status")
    assert kind == "Access-Accept"


def challenge(node: Node, user: str, password: str) -> tuple[str | None, dict[str, str]]:
    return radclient(node.port, {"User-Name": user, "User-Password": password})


def test_local_password_then_challenge(node: Node) -> None:
    node.gateway(primary="local")
    station = {"Calling-Station-Id": "198.51.100.23"}  # the VPN client's address
    kind, attrs = radclient(
        node.port, {"User-Name": "alice", "User-Password": "alice-local-pw", **station}
    )
    assert kind == "Access-Challenge"
    assert attrs["Reply-Message"] == "Enter your verification code"
    state = attrs["State"]
    kind, _ = radclient(
        node.port,
        {"User-Name": "alice", "User-Password": node.code("alice", 30), "State": state, **station},
    )
    assert kind == "Access-Accept"
    # Both steps are audited with where the person is (the person's recent sign-ins show it).
    rows = _audit_rows(node, "alice")
    primary = [r for r in rows if r["action"] == "primary" and r["result"] == "accepted"]
    accepted = [r for r in rows if r["action"] == "authenticate" and r["result"] == "accepted"]
    assert primary[-1]["address"] == "198.51.100.23"
    assert accepted[-1]["address"] == "198.51.100.23" and accepted[-1]["browser"] == ""
    assert "from=198.51.100.23" in cli(node.dd, "audit", "--user", "alice").stdout
    # The State is single-use.
    kind, _ = radclient(
        node.port, {"User-Name": "alice", "User-Password": node.code("alice", 30), "State": state}
    )
    assert kind == "Access-Reject"
    kind, _ = challenge(node, "alice", "wrong-password")
    assert kind == "Access-Reject"


def test_state_is_bound_to_the_user_and_expires(node: Node) -> None:
    node.gateway(primary="local")
    _, attrs = challenge(node, "erin", "erin-local-pw")
    kind, _ = radclient(
        node.port,
        {"User-Name": "alice", "User-Password": node.code("alice"), "State": attrs["State"]},
    )
    assert kind == "Access-Reject"  # erin's State is no use to alice
    _, attrs = challenge(node, "erin", "erin-local-pw")
    time.sleep(3.5)  # [radius] challenge_seconds = 3
    kind, reply = radclient(
        node.port,
        {"User-Name": "erin", "User-Password": node.code("erin"), "State": attrs["State"]},
    )
    assert kind == "Access-Reject" and "expired" in reply["Reply-Message"]


def test_password_and_code_in_one_field(node: Node) -> None:
    node.gateway(primary="local", combined="yes")
    kind, _ = challenge(node, "erin", "erin-local-pw" + node.code("erin", -30))
    assert kind == "Access-Accept"
    kind, _ = challenge(node, "erin", "wrong-pw" + node.code("erin"))
    assert kind == "Access-Reject"


def test_ldap_primary_against_slapd(node: Node) -> None:
    node.gateway(primary="ldap")
    kind, attrs = challenge(node, "carol", "carol-ldap-pw")
    assert kind == "Access-Challenge"
    kind, _ = radclient(
        node.port,
        {"User-Name": "carol", "User-Password": node.code("carol"), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"
    assert challenge(node, "carol", "not-carols")[0] == "Access-Reject"
    assert challenge(node, "carol", "")[0] == "Access-Reject"  # never an anonymous bind


def test_radius_primary_against_freeradius(node: Node) -> None:
    node.gateway(primary="radius")
    kind, attrs = challenge(node, "dave", "dave-upstream-pw")
    assert kind == "Access-Challenge"
    kind, _ = radclient(
        node.port,
        {"User-Name": "dave", "User-Password": node.code("dave"), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"
    assert challenge(node, "dave", "wrong")[0] == "Access-Reject"


def test_bypass_and_lockout_apply(node: Node) -> None:
    node.gateway(primary="none")
    cli(node.dd, "bypass", "bob", "--seconds", "60")
    assert challenge(node, "bob", "whatever")[0] == "Access-Accept"
    for _ in range(10):
        challenge(node, "bob", "000000")
    kind, attrs = challenge(node, "bob", node.code("bob", 30))
    assert kind == "Access-Reject" and "Too many failed attempts" in attrs["Reply-Message"]
    cli(node.dd, "user", "unlock", "bob")


def _user_with_password(node: Node, user: str) -> None:
    """A user with an authenticator app (oathtool's seed) and the node's own password."""
    cli(node.dd, "user", "add", user)
    node.seeds[user] = secret_of(cli(node.dd, "method", "add", user, "totp", "--no-qr").stdout)
    subprocess.run(
        [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(node.dd)],
        input=f"{user}-local-pw\n", text=True, check=True, capture_output=True,
    )  # fmt: skip


def _audit_rows(node: Node, user: str) -> list[dict[str, str]]:
    out = cli(node.dd, "audit", "--user", user, "--json", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line]


THRESHOLD = 10
"""[policy] lockout_threshold (the shipped default)."""


def test_wrong_first_factor_passwords_lock_the_user_as_the_portals_do(node: Node) -> None:
    """Issue 29: a wrong RADIUS password counts toward the user's lockout as a wrong portal
    password does; a locked user's password is not even checked (an Access-Reject that says
    nothing else), so after the threshold the right password with the right code is refused
    until `openmfa user unlock` — password-then-challenge and password+code in one field."""
    # Password, then a challenge for the code.
    _user_with_password(node, "hank")
    node.gateway(primary="local")
    for _ in range(THRESHOLD):
        kind, attrs = challenge(node, "hank", "not-hanks-password")
        assert (kind, attrs["Reply-Message"]) == ("Access-Reject", "Verification failed")
    kind, attrs = challenge(node, "hank", "hank-local-pw")
    assert (kind, attrs["Reply-Message"]) == ("Access-Reject", "Verification failed"), attrs
    rows = _audit_rows(node, "hank")
    assert [r for r in rows if r["action"] == "primary"] == [
        r for r in rows if r["action"] == "primary" and r["result"] == "rejected"
    ]
    assert sum(r["action"] == "primary" for r in rows) == THRESHOLD  # the right one: unchecked
    wrong = [r for r in rows if r["action"] == "authenticate" and r["reason"] == "wrong_password"]
    assert len(wrong) == THRESHOLD and all(r["client"] == "radius:gw" for r in wrong)
    assert any(r["action"] == "lockout" for r in rows)
    decided = [r for r in rows if r["action"] != "session.end"]  # the lock ends sessions too
    assert decided[-1]["action"] == "authenticate" and decided[-1]["reason"] == "locked"
    said = cli(node.dd, "audit", "--user", "hank").stdout  # what an administrator reads
    for action in ("authenticate", "primary"):  # the failure counted, the password refused
        assert re.search(rf"{action} +rejected +wrong_password +user=hank client=radius:gw", said)
    cli(node.dd, "user", "unlock", "hank")
    kind, attrs = challenge(node, "hank", "hank-local-pw")
    assert kind == "Access-Challenge", attrs
    kind, _ = radclient(
        node.port,
        {"User-Name": "hank", "User-Password": node.code("hank"), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"

    # Password and code in one field.
    _user_with_password(node, "iris")
    node.gateway(primary="local", combined="yes")
    for _ in range(THRESHOLD - 1):
        assert challenge(node, "iris", "wrong-pw" + node.code("iris"))[0] == "Access-Reject"
    # No split into a password and a code at all: a wrong first factor too.
    assert challenge(node, "iris", "no-digits-at-all")[0] == "Access-Reject"
    right = "iris-local-pw" + node.code("iris")
    assert challenge(node, "iris", right)[0] == "Access-Reject"
    rows = _audit_rows(node, "iris")
    counted = [r for r in rows if r["action"] == "authenticate" and r["reason"] == "wrong_password"]
    assert len(counted) == THRESHOLD
    assert any(r["action"] == "lockout" for r in rows)
    cli(node.dd, "user", "unlock", "iris")
    assert challenge(node, "iris", "iris-local-pw" + node.code("iris", 30))[0] == "Access-Accept"

    # The other first factors count the same way (the directory's password here).
    node.gateway(primary="ldap")
    assert challenge(node, "carol", "not-carols-either")[0] == "Access-Reject"
    rows = _audit_rows(node, "carol")
    assert rows[-1]["action"] == "authenticate" and rows[-1]["reason"] == "wrong_password"
    assert rows[-1]["client"] == "radius:gw"


PAM_SERVICE = "openmfa-test"


@pytest.fixture
def pam_service(node: Node, tmp_path: Path) -> Iterator[None]:
    conf = tmp_path / "pam_radius_auth.conf"
    conf.write_text(f"127.0.0.1:{node.port} {SECRET} 3\n")
    service = Path("/etc/pam.d") / PAM_SERVICE
    service.write_text(
        f"auth required pam_radius_auth.so conf={conf}\naccount required pam_permit.so\n"
    )
    try:
        yield
    finally:
        service.unlink()


def pamtester(user: str, *answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pamtester", "-v", PAM_SERVICE, user, "authenticate"],
        input="".join(a + "\n" for a in answers),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_linux_login_through_pam_otp_only(node: Node, pam_service: None) -> None:
    # Debian's pam_radius_auth 2.0.0 sends no Message-Authenticator.
    node.gateway(primary="none", require_message_authenticator="no")
    ok = pamtester("frank", node.code("frank", 30))
    assert ok.returncode == 0 and "successfully authenticated" in ok.stdout + ok.stderr
    bad = pamtester("frank", "000000")
    assert bad.returncode != 0


def test_linux_login_through_pam_with_challenge(node: Node, pam_service: None) -> None:
    node.gateway(primary="local", require_message_authenticator="no")
    ok = pamtester("gina", "gina-local-pw", node.code("gina"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Enter your verification code" in ok.stdout + ok.stderr


def test_ipv6(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "v6")
    seed = secret_of(cli(dd, "method", "add", "v6", "totp", "--no-qr").stdout)
    cli(dd, "radius", "client", "add", "v6gw", "--address", "::1/128", "--secret", SECRET)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    with server(dd, radius=f"[::1]:{port}"):
        lines = f'User-Name = "v6"\nUser-Password = "{oathtool("--totp", "-b", seed)}"\n'
        out = subprocess.run(
            ["radclient", "-6", "-x", "-t", "2", "-r", "1", f"[::1]:{port}", "auth", SECRET],
            input=lines + "Message-Authenticator = 0x00\n",
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "Received Access-Accept" in out


def test_draining_finishes_open_challenges_and_sends_new_challenges_elsewhere(node: Node) -> None:
    """What `farm upgrade` does to a node before it restarts it (signed farm requests)."""
    node.gateway(primary="local")
    out = cli(node.dd, "farm", "init", "--url", node.srv.url).stdout
    _, key = membership.parse_token(re.search(r"(omfa-join-\S+)", out).group(1))  # type: ignore[union-attr]

    def farm(method: str, path: str, body: object = None) -> dict[str, object]:
        resp = call(key, "orchestrator", node.srv.url, method, path, body=body)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    kind, attrs = challenge(node, "alice", "alice-local-pw")
    assert kind == "Access-Challenge"
    said = farm("POST", "/v1/farm/drain", {"on": True})
    where = f"127.0.0.1:{node.port}"  # where it listens: the rolling upgrade asks it there
    assert said["radius"] == {"listen": where, "draining": True, "open_challenges": 1}
    # The sign-in in progress finishes here ...
    kind, _ = radclient(
        node.port,
        {"User-Name": "alice", "User-Password": node.code("alice", 30), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"
    assert farm("GET", "/v1/farm/hello")["radius"] == {
        "listen": where,
        "draining": True,
        "open_challenges": 0,
    }
    # ... new ones that would open a challenge get no answer, so the gateway asks its next
    # server (and Status-Server gets none: gateways that watch it move away) ...
    before = node.stats().get("drained", 0)
    assert challenge(node, "erin", "erin-local-pw") == (None, {})
    assert radclient(node.port, {}, command="status")[0] is None
    assert node.stats()["drained"] >= before + 2
    # ... while sign-ins decided in one round are still answered: nothing stays open for them,
    # and the restart hands the socket over (radius.handoff), so none waits for a timeout.
    node.gateway(primary="local", combined="yes")
    assert challenge(node, "erin", "erin-local-pw" + node.code("erin", 30))[0] == "Access-Accept"
    node.gateway(primary="none")
    assert challenge(node, "frank", node.code("frank", 30))[0] == "Access-Accept"
    assert challenge(node, "frank", "")[0] is None  # a push: it would stay open here
    farm("POST", "/v1/farm/drain", {"on": False})
    assert challenge(node, "frank", "")[0] is not None
    node.gateway(primary="local")
    assert challenge(node, "erin", "erin-local-pw")[0] == "Access-Challenge"
    # Drained for an upgrade whose next process takes the open challenges over
    # (radius.carry): new challenges are opened still, and none holds the drain back.
    said = farm("POST", "/v1/farm/drain", {"on": True, "carry": True})
    assert said["radius"] == {"listen": where, "draining": True, "open_challenges": 0}
    kind, attrs = challenge(node, "gina", "gina-local-pw")
    assert kind == "Access-Challenge"
    assert farm("GET", "/v1/farm/hello")["radius"]["open_challenges"] == 0
    kind, _ = radclient(
        node.port,
        {"User-Name": "gina", "User-Password": node.code("gina", 30), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"
    assert radclient(node.port, {}, command="status")[0] is None  # gateways still move away
    farm("POST", "/v1/farm/drain", {"on": False})
