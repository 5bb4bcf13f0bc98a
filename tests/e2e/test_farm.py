"""A farm of real `openmfa serve` processes on loopback: join, follow, refuse, catch up."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from openmfa.core.totp import step_at, totp
from openmfa.farm.signing import sign
from openmfa.sdk import Requests, SdkClient

from .helpers import cli, free_port, init, oathtool, secret_of, server

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def name_node(dd: Path, name: str) -> None:
    cfg = dd / "server.toml"
    cfg.write_text(cfg.read_text().replace('node_name = ""', f'node_name = "{name}"'))


def eventually(what: str, check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.2)


def users_on(dd: Path) -> set[str]:
    out = cli(dd, "user", "list", "--json").stdout
    return {u["name"] for u in json.loads(out)}


def test_subordinate_follows_refuses_writes_and_catches_up(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    admin = init(a)
    name_node(a, "node-a")
    with server(a) as master:
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", "alice")
        cli(a, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")

        b.mkdir()
        (b / "server.toml").write_text((a / "server.toml").read_text().replace("node-a", "node-b"))
        joined = cli(b, "farm", "join", master.url, "--token", token).stdout
        assert "subordinate" in joined
        assert users_on(b) == {"alice"}  # the snapshot
        listed = {n["name"]: n for n in farm_status(a)["nodes"]}  # type: ignore[attr-defined]
        assert listed["node-b"]["health"] == "never seen"  # joined, not serving yet
        r = httpx.get(master.url + "/v1/farm/status", headers={"authorization": f"Bearer {admin}"})
        assert {n["name"]: n["health"] for n in r.json()["nodes"]}["node-b"] == "never seen"

        with server(b) as sub:
            # The admin key replicated with the data: the subordinate authenticates alice.
            h = {"authorization": f"Bearer {admin}"}
            r = httpx.post(
                sub.url + "/v1/authenticate",
                json={"user": "alice", "code": oathtool("--totp", "-b", SEED)},
                headers=h,
            )
            assert r.status_code == 200 and r.json()["accepted"] is True, r.text

            # New configuration on the master reaches the subordinate.
            cli(a, "user", "add", "bob")
            bob_secret = secret_of(cli(a, "method", "add", "bob", "totp", "--no-qr").stdout)
            eventually("bob on node-b", lambda: "bob" in users_on(b))
            ok = cli(b, "verify", "bob", oathtool("--totp", "-b", bob_secret), expect=None)
            assert ok.returncode == 0, ok.stdout + ok.stderr

            # Writes on the subordinate are refused, naming the master (CLI and SDK).
            refused = cli(b, "user", "add", "carol", expect=1)
            assert master.url in refused.stderr and "subordinate" in refused.stderr
            r = httpx.post(sub.url + "/v1/users", json={"name": "carol"}, headers=h)
            assert r.status_code == 409 and r.json()["code"] == "not_master", r.text
            assert r.json()["master_url"] == master.url
            assert "carol" not in users_on(a)
            # The SDK client pointed at the subordinate alone follows the master for writes,
            # once, with the same request id; reads stay on the subordinate.
            with SdkClient(sub.url, admin) as sdk:
                sdk.send(Requests.create_user("dave"), request_id="follow-the-master")
                assert "dave" in users_on(a)
                events = [json.loads(ln) for ln in cli(a, "audit", "--json").stdout.splitlines()]
                assert any(e["request_id"] == "follow-the-master" for e in events)
                eventually("dave on node-b", lambda: "dave" in users_on(b))
                assert sdk.get_user("dave").name == "dave"

            def lag_zero() -> bool:
                doc = json.loads(cli(a, "farm", "status", "--json").stdout)
                nodes = {n["name"]: n for n in doc["nodes"]}
                sub_node = nodes.get("node-b")
                return sub_node is not None and sub_node["lag"] == 0

            eventually("node-b reported with lag 0", lag_zero, 40)
            status = json.loads(cli(a, "farm", "status", "--json").stdout)
            roles = {n["name"]: (n["role"], n["health"]) for n in status["nodes"]}
            assert roles == {"node-a": ("master", "ok"), "node-b": ("subordinate", "ok")}
            # The same through the SDK (the console's farm page): node-b came up.
            r = httpx.get(master.url + "/v1/farm/status", headers=h)
            assert r.status_code == 200 and r.json()["in_farm"] is True, r.text
            seen = {n["name"]: (n["role"], n["health"]) for n in r.json()["nodes"]}
            assert seen == roles

        # Offline while the master takes many writes; it catches up when it returns.
        for i in range(12):
            cli(a, "user", "add", f"user{i:02d}")
        cli(a, "user", "delete", "bob")
        expected = users_on(a)
        with server(b):
            eventually("node-b caught up", lambda: users_on(b) == expected, 40)


def test_farm_endpoints_refuse_unsigned_forged_and_replayed_requests(tmp_path: Path) -> None:
    a = tmp_path / "a"
    init(a)
    with server(a) as master:
        r = httpx.get(master.url + "/v1/farm/changes?since=0")
        assert r.status_code == 404 and "not in a farm" in r.json()["message"]
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        from openmfa.farm.membership import parse_token

        _, key = parse_token(token)
        target = "/v1/farm/changes?since=0"

        def get(headers: dict[str, str], path: str = target) -> httpx.Response:
            return httpx.get(master.url + path, headers=headers)

        assert get({}).status_code == 401
        assert get(sign(bytes(32), "x", "GET", target)).status_code == 401  # another key
        stale = sign(key, "x", "GET", target, now=time.time() - 600)
        assert "clock" in get(stale).json()["message"]
        good = sign(key, "x", "GET", target)
        assert get(good).status_code == 200
        assert "replay" in get(good).json()["message"]
        assert get(sign(key, "x", "GET", target), "/v1/farm/changes?since=1").status_code == 401
        snap = httpx.get(
            master.url + "/v1/farm/snapshot", headers=sign(key, "x", "GET", "/v1/farm/snapshot")
        )
        assert snap.status_code == 200 and b"SQLite format 3" not in snap.content
        # The node agent's own endpoints act on the host: never without the farm key.
        for path in ("/v1/farm/upgrade", "/v1/farm/rollback", "/v1/farm/drain"):
            r = httpx.post(master.url + path, content=b"{}")
            assert r.status_code == 401, (path, r.text)
        rb = httpx.post(
            master.url + "/v1/farm/rollback",
            content=b"{}",
            headers=sign(key, "x", "POST", "/v1/farm/rollback", b"{}"),
        )
        assert rb.status_code == 422 and "no upgrade to roll back" in rb.json()["message"]


HOTP_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_a_code_is_used_once_in_the_farm_and_the_policy_decides_without_master(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    admin = init(a)
    name_node(a, "node-a")
    h = {"authorization": f"Bearer {admin}"}

    def check(url: str, user: str, code: str) -> dict[str, object]:
        r = httpx.post(url + "/v1/authenticate", json={"user": user, "code": code}, headers=h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    with server(a) as master:
        master_port = int(master.url.rsplit(":", 1)[1])
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", "alice")
        cli(a, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")
        cli(a, "method", "add", "alice", "hotp", "--secret", HOTP_SEED, "--no-qr")
        b.mkdir()
        (b / "server.toml").write_text((a / "server.toml").read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", master.url, "--token", token)
        with server(b) as sub:
            totp_now = oathtool("--totp", "-b", SEED)
            assert check(sub.url, "alice", totp_now)["accepted"] is True
            assert check(master.url, "alice", totp_now)["reason"] == "replay"
            hotp = [oathtool("-b", "-c", str(c), HOTP_SEED) for c in range(20)]
            # Verified by the master's CLI: that reaches node-b's copy only as a claim answer.
            cli(a, "verify", "alice", hotp[0])
            # node-b's own copy has not seen counter 0 used; the master has.
            assert check(sub.url, "alice", hotp[0])["reason"] == "replay"
            assert check(sub.url, "alice", hotp[1])["accepted"] is True
            # Behind the master's counter now: HOTP cannot tell a replay from a wrong code.
            assert check(master.url, "alice", hotp[1])["reason"] == "wrong_code"
            # The token is used on the master more often than node-b's look-ahead window (10):
            # the master's server pushes the counters with the change feed, so node-b still
            # takes the next code.
            for c in range(2, 15):
                assert check(master.url, "alice", hotp[c])["accepted"] is True
            eventually("node-b's HOTP counter at 15", lambda: hotp_counter(b) == 15)
            assert check(sub.url, "alice", hotp[15])["accepted"] is True
    # The master is gone. By default the subordinate decides on its own state, and says so.
    hotp = hotp[14:]  # counters 16 and 17 come next
    with server(b) as sub:
        assert check(sub.url, "alice", hotp[2])["accepted"] is True
    cfg = b / "server.toml"
    cfg.write_text(
        cfg.read_text().replace(
            'when_master_unreachable = "accept_local"', 'when_master_unreachable = "fail_closed"'
        )
    )
    with server(b) as sub:
        refused = check(sub.url, "alice", hotp[3])
        assert refused["accepted"] is False and refused["reason"] == "master_unreachable"
    out = cli(b, "audit", "--user", "alice", "--json").stdout
    events = [json.loads(line) for line in out.splitlines()]
    details = [(e["result"], e["detail"]) for e in events if e["action"] == "authenticate"]
    assert ("accepted", "claimed at the master") in details
    assert ("rejected", "the master has seen this code on another node") in details
    assert ("accepted", "master unreachable: decided on this node's state") in details
    assert details[-1] == ("rejected", "master unreachable: refused (fail closed)")
    # The master returns: every event node-b recorded (also while the master was away, across
    # two restarts of node-b) reaches it, once.
    mine = sorted(e["request_id"] for e in events if e["node"] == "node-b")
    assert len(mine) == 6  # the six attempts above
    with server(a, port=master_port), server(b):

        def relayed() -> list[str]:
            out = cli(a, "audit", "--json").stdout
            rows = [json.loads(line) for line in out.splitlines()]
            return sorted(r["request_id"] for r in rows if r["node"] == "node-b")

        eventually("node-b's audit events on the master", lambda: relayed() == mine, 30)
    assert relayed() == mine  # no duplicates after the final push on stop


def make_totp_user(url: str, h: dict[str, str], name: str) -> bytes:
    """A user with a TOTP method, made through the master's SDK; returns the seed."""
    assert httpx.post(url + "/v1/users", json={"name": name}, headers=h).status_code == 201
    r = httpx.post(url + f"/v1/users/{name}/methods", json={"kind": "totp"}, headers=h)
    assert r.status_code == 201, r.text
    return base64.b32decode(r.json()["secret"])


class Load:
    """A bounded load generator: each user's current TOTP code, once per time step, sent to
    the nodes in turn, until the block ends (at most 120 s). Every valid code must pass."""

    def __init__(self, urls: list[str], h: dict[str, str], users: dict[str, bytes]) -> None:
        self.urls, self.h, self.users = urls, h, users
        self.accepted = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        used: set[tuple[str, int]] = set()
        turn = 0
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                now = time.time()
                step = step_at(now)
                free = [u for u in self.users if (u, step) not in used]
                if not free or step_at(now + 1) != step:  # none left, or the step is ending
                    time.sleep(0.2)
                    continue
                user = free[0]
                used.add((user, step))
                url = self.urls[turn % len(self.urls)]
                turn += 1
                code = totp(self.users[user], now)
                try:
                    r = client.post(
                        url + "/v1/authenticate", json={"user": user, "code": code}, headers=self.h
                    )
                    ok = r.status_code == 200 and r.json()["accepted"] is True
                    why = r.text
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                if ok:
                    self.accepted += 1
                else:
                    self.failed.append(f"{user} at {url}: {why}")
                time.sleep(28 / len(self.users))  # spread over the step: a steady trickle


def hotp_counter(dd: Path) -> int:
    """The HOTP counter in a node's data file (read-only)."""
    with sqlite3.connect(f"file:{dd / 'openmfa.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT s.counter FROM method_state s JOIN methods m ON m.id = s.method_id "
            "WHERE m.kind = 'hotp'"
        ).fetchone()
    return int(row[0])


def farm_status(dd: Path) -> dict[str, object]:
    return dict(json.loads(cli(dd, "farm", "status", "--json").stdout))


def test_promotion_handover_kill_and_fencing_of_the_former_master(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    admin = init(a)
    name_node(a, "node-a")
    ports = {n: free_port() for n in "abc"}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    h = {"authorization": f"Bearer {admin}"}

    def accepted(url: str, code: str) -> bool:
        r = httpx.post(url + "/v1/authenticate", json={"user": "alice", "code": code}, headers=h)
        assert r.status_code == 200, r.text
        return bool(r.json()["accepted"])

    hotp = [oathtool("-b", "-c", str(i), HOTP_SEED) for i in range(6)]
    with ExitStack() as nodes:
        nodes.enter_context(server(a, port=ports["a"]))
        out = cli(a, "farm", "init", "--url", urls["a"]).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", "alice")
        cli(a, "method", "add", "alice", "hotp", "--secret", HOTP_SEED, "--no-qr")
        crowd = {f"load{i:02d}": make_totp_user(urls["a"], h, f"load{i:02d}") for i in range(60)}
        for n, dd in (("b", b), ("c", c)):
            dd.mkdir()
            (dd / "server.toml").write_text(
                (a / "server.toml").read_text().replace("node-a", f"node-{n}")
            )
            cli(dd, "farm", "join", urls["a"], "--token", token, "--url", urls[n])
        srv_b = nodes.enter_context(server(b, port=ports["b"]))
        nodes.enter_context(server(c, port=ports["c"]))

        # Planned: A hands over to B and follows it; C is told.
        out = cli(a, "farm", "promote", "node-b").stdout
        assert "node-b is the master of epoch 2" in out and "node-c: follows it" in out
        eventually(
            "node-a follows node-b",
            lambda: farm_status(a)["master"] == urls["b"] and farm_status(a)["epoch"] == 2,
        )
        refused = cli(a, "user", "add", "dave", expect=1)
        assert urls["b"] in refused.stderr
        cli(b, "user", "add", "dave")
        for dd in (a, c):
            eventually(f"dave on {dd.name}", lambda dd=dd: "dave" in users_on(dd))
        assert accepted(urls["c"], hotp[0])  # claimed at the new master
        assert not accepted(urls["a"], hotp[0])

        # The master dies under load. The others keep authenticating on their own state.
        with Load([urls["a"], urls["c"]], h, crowd) as load:
            eventually("load running", lambda: load.accepted >= 5)
            srv_b.proc.kill()
            srv_b.proc.wait()
            assert accepted(urls["c"], hotp[1])
            out = cli(c, "farm", "promote", "node-c", "--force").stdout
            assert "node-c is the master of epoch 3" in out and "node-a: follows it" in out
            cli(c, "user", "add", "erin")
            eventually("erin on node-a", lambda: "erin" in users_on(a))
            assert accepted(urls["a"], hotp[2])  # claimed at node-c now
            at_promotion = load.accepted
            eventually("load goes on after the promotion", lambda: load.accepted > at_promotion)
        assert load.failed == [], load.failed

        # The former master returns with epoch 2: it sees epoch 3 and follows node-c.
        with server(b, port=ports["b"]):
            eventually(
                "node-b demoted",
                lambda: farm_status(b)["epoch"] == 3 and farm_status(b)["master"] == urls["c"],
            )
            refused = cli(b, "user", "add", "frank", expect=1)
            assert "subordinate" in refused.stderr
            eventually("erin on node-b", lambda: "erin" in users_on(b))
            assert {"alice", "dave", "erin"} <= users_on(b)
            assert not accepted(urls["b"], hotp[2])  # used at node-a, claimed at node-c


def test_failures_on_every_node_count_toward_one_lockout(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    admin = init(a)
    name_node(a, "node-a")
    cfg = a / "server.toml"
    cfg.write_text(cfg.read_text().replace("lockout_threshold = 10", "lockout_threshold = 3"))
    h = {"authorization": f"Bearer {admin}"}

    def check(url: str, code: str) -> dict[str, object]:
        r = httpx.post(url + "/v1/authenticate", json={"user": "alice", "code": code}, headers=h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    with server(a) as master:
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", "alice")
        cli(a, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")
        b.mkdir()
        (b / "server.toml").write_text(cfg.read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", master.url, "--token", token)
        with server(b) as sub:
            assert check(sub.url, "000001")["reason"] == "wrong_code"
            assert check(sub.url, "000002")["reason"] == "wrong_code"
            assert check(master.url, "000003")["reason"] == "wrong_code"  # the third, farm-wide
            # node-b has seen only two failures itself; the master says alice is locked.
            locked = check(sub.url, oathtool("--totp", "-b", SEED))
            assert locked["accepted"] is False and locked["reason"] == "locked", locked
            cli(a, "user", "unlock", "alice")
            assert check(sub.url, oathtool("--totp", "-b", SEED))["accepted"] is True


def test_a_subordinate_behind_the_retained_changes_rebootstraps(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    admin = init(a)
    name_node(a, "node-a")
    cfg = a / "server.toml"
    cfg.write_text(cfg.read_text().replace("# retain_changes = 100000", "retain_changes = 3"))
    port = free_port()
    with server(a, port=port) as master:
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", "alice")
        cli(a, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")
        b.mkdir()
        (b / "server.toml").write_text((a / "server.toml").read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", master.url, "--token", token)
        # node-b is away while the master takes more changes than it keeps.
        for i in range(8):
            cli(a, "user", "add", f"user{i:02d}")
        cli(a, "user", "delete", "user00")
        late = secret_of(cli(a, "method", "add", "user01", "totp", "--no-qr").stdout)
    expected = users_on(a)
    with server(a, port=port):  # prunes its change log shortly after it starts
        eventually("the master forgot old changes", lambda: "forgot" in _log_of(a), 10)
        with server(b) as sub:
            eventually("node-b re-bootstrapped", lambda: users_on(b) == expected, 40)
            log = next(b.glob("serve-*.log")).read_text()
            assert "re-bootstrapped from the master's snapshot" in log
            r = httpx.post(
                sub.url + "/v1/authenticate",
                json={"user": "user01", "code": oathtool("--totp", "-b", late)},
                headers={"authorization": f"Bearer {admin}"},
            )
            assert r.status_code == 200 and r.json()["accepted"] is True, r.text
            events = [json.loads(x) for x in cli(b, "audit", "--json").stdout.splitlines()]
            assert any(e["action"] == "farm.resync" for e in events)
            # It follows normally afterwards.
            cli(a, "user", "add", "after")
            eventually("a later change reaches node-b", lambda: "after" in users_on(b), 20)


def _log_of(dd: Path) -> str:
    return "".join(p.read_text() for p in dd.glob("serve-*.log"))
