"""The rolling farm upgrade scenario, shared by tests/e2e/test_farm_upgrade.py and bench/farm.py.

The whole farm upgraded, one node at a time, under load, behind a real HAProxy.

Three installed nodes (``openmfa install``, each with its own release environments and install
record) run the previous release as a farm. HAProxy balances their SDK ports; a RADIUS client
lists the three RADIUS ports and fails over on a timeout, as gateways do. While both keep
authenticating, ``openmfa farm upgrade`` (run on the master with the previous release) upgrades
every node to this tree's release. Then: no authentication failed, no audit event is missing
on the master, every user and method is on every node, and the format is finalized.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from openmfa.core.totp import step_at, totp
from openmfa.radius import packet as p

from .helpers import OPENMFA, built_once, free_port
from .services import free_udp_port
from .test_upgrade import NEW, OLD, ROOT, build_wheel, recorded_release

RADIUS_SECRET = "farm-radius-secret"
RADIUS_SENDS = 3
"""Sends of one request to one server before the gateway tries its next (the first and two
retransmissions, a common NAS default)."""
RADIUS_WAIT = 2.0
"""Seconds the gateway waits for an answer after each send."""
RADIUS_DEAD_SECONDS = 10.0


def radius_answer(s: socket.socket, auth: bytes, secret: bytes, wait: float) -> p.Packet | None:
    """The answer to the request sent with ``auth``, or None after ``wait`` seconds; a late
    answer to an earlier request, or anything not from a server with the secret, is read and
    set aside."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None
        try:
            return p.verify_response(data, auth, secret)
        except p.MalformedPacket:
            continue
    return None


USERS = 80
NAMES = ("node-a", "node-b", "node-c")


def run(*cmd: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
    return proc.stdout


@dataclass
class Node:
    name: str
    root: Path
    record: Path
    port: int
    radius_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    overrides: bool = False
    """Started with --listen and --radius-listen (server.toml names other ports): a node
    restarted by an upgrade must come back with them."""

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def openmfa(self, *args: str) -> str:
        return run(str(self.root / "current" / "venv" / "bin" / "openmfa"), *args)

    def cli(self, *args: str) -> str:
        return self.openmfa(*args, "--data-dir", str(self.var))

    def start(self) -> None:
        self.procs.append(
            start_installed(
                self.root,
                ["serve", "--data-dir", str(self.var), *self.listen_options()],
                self.record,
                lambda: answers(self.url + "/readyz"),
            )
        )

    def listen_options(self) -> list[str]:
        if not self.overrides:
            return []
        return [
            "--listen",
            f"127.0.0.1:{self.port}",
            "--radius-listen",
            f"127.0.0.1:{self.radius_port}",
        ]

    def stop(self) -> None:
        stop_service(self.var / "openmfa.lock", self.procs)

    def release(self) -> str:
        return str(httpx.get(self.url + "/version", timeout=5).json()["release"])


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_installed(
    root: Path, args: list[str], record: Path, ready: Callable[[], bool]
) -> subprocess.Popen[bytes]:
    """Start ``ROOT/current/venv/bin/openmfa ARGS`` the way its service manager would (its own
    session, its install record named, output to ``ROOT/var/serve.log``); back once ``ready``."""
    log_path = root / "var" / "serve.log"
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [str(root / "current" / "venv" / "bin" / "openmfa"), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "OPENMFA_INSTALL_RECORD": str(record)},
        )
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    return proc


def stop_service(lock: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the service holding ``lock`` (an upgrade may have restarted it: its pid is in
    the lock), then the processes this test started."""
    text = lock.read_text().strip() if lock.exists() else ""
    if text.isdigit() and Path(f"/proc/{text}").exists():
        os.kill(int(text), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{text}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Load:
    """Bounded authentication load: SDK through HAProxy and RADIUS with client failover."""

    sdk_url: str
    api_key: str
    radius_ports: list[int]
    seeds: dict[str, bytes]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    sdk_request_ids: list[str] = field(default_factory=list)
    dead_until: dict[int, float] = field(default_factory=dict)
    """RADIUS servers the gateway skips until then (a dead time, as a NAS keeps one)."""

    def credentials(self) -> tuple[str, str] | None:
        """A user whose code for the current step has not been used yet."""
        step = step_at(time.time())
        with self.lock:
            for name, key in self.seeds.items():
                if self.used.get(name, -1) < step:
                    self.used[name] = step
                    return name, totp(key, step * 30)
        return None

    def sdk_once(self, client: httpx.Client, cred: tuple[str, str]) -> tuple[bool, str]:
        """One SDK authentication through the balancer: (accepted, what went wrong)."""
        rid = secrets.token_hex(8)
        try:
            r = client.post(
                self.sdk_url + "/v1/authenticate",
                json={"user": cred[0], "code": cred[1]},
                headers={"authorization": f"Bearer {self.api_key}", "x-request-id": rid},
            )
            good = r.status_code == 200 and r.json()["accepted"] is True
            why = f"sdk {cred[0]}: {r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            good, why = False, f"sdk {cred[0]}: {exc!r}"
        if good:
            with self.lock:
                self.sdk_request_ids.append(rid)
        return good, why

    def radius_once(self, s: socket.socket, cred: tuple[str, str]) -> tuple[bool, str]:
        """One RADIUS sign-in as a gateway (a NAS, a VPN concentrator) makes it: each server
        of its list in order, the same packet sent again while one is silent (RFC 5080 §2.2.1:
        the server's duplicate cache answers a retransmission, so a slow server never sees the
        code twice), then the next server; a server silent to every send is skipped for a dead
        time (a stopped node costs one request its wait, not every request)."""
        secret = RADIUS_SECRET.encode()
        now = time.monotonic()
        alive = [port for port in self.radius_ports if self.dead_until.get(port, 0.0) <= now]
        for port in alive or self.radius_ports:
            ident = secrets.randbelow(256)
            auth = os.urandom(16)
            raw = p.encode_request(
                p.ACCESS_REQUEST,
                ident,
                [
                    (p.USER_NAME, cred[0].encode()),
                    (p.USER_PASSWORD, p.hide_password(cred[1].encode(), secret, auth)),
                ],
                secret,
                auth,
            )
            for _ in range(RADIUS_SENDS):
                s.sendto(raw, ("127.0.0.1", port))
                answer = radius_answer(s, auth, secret, RADIUS_WAIT)
                if answer is not None:
                    good = answer.code == p.ACCESS_ACCEPT
                    return good, f"radius {cred[0]}: {answer.code} from :{port}"
            with self.lock:
                self.dead_until[port] = time.monotonic() + RADIUS_DEAD_SECONDS
        return False, f"radius {cred[0]}: no server answered"

    def sdk_worker(self, limit: int) -> None:
        with httpx.Client(timeout=10) as client:
            self._loop(limit, lambda cred: self.sdk_once(client, cred))

    def radius_worker(self, limit: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            self._loop(limit, lambda cred: self.radius_once(s, cred))

    def _loop(self, limit: int, once: Callable[[tuple[str, str]], tuple[bool, str]]) -> None:
        for _ in range(limit):
            if self.stop.is_set():
                return
            cred = self.credentials()
            if cred is None:
                time.sleep(0.5)
                continue
            good, why = once(cred)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed.append(why)
            time.sleep(0.05)


def haproxy_config(work: Path, port: int, nodes: list[Node]) -> Path:
    """The README's HAProxy configuration (docs/haproxy.cfg), with this test's admin socket,
    frontend port and nodes."""
    return haproxy_config_for(work, port, [(n.name, n.port) for n in nodes])


def haproxy_config_for(work: Path, port: int, servers: list[tuple[str, int]]) -> Path:
    text = (ROOT / "docs" / "haproxy.cfg").read_text()
    text = text.replace("/run/haproxy/admin.sock", str(work / "haproxy.sock"))
    text = text.replace("bind 127.0.0.1:8443", f"bind 127.0.0.1:{port}")
    lines = [ln for ln in text.splitlines() if not ln.startswith("    server ")]
    lines += [f"    server {name} 127.0.0.1:{p}" for name, p in servers]
    cfg = work / "haproxy.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def make_releases(out: Path, version: str = OLD) -> tuple[Path, Path, str]:
    """(a recorded release's wheel — the newest by default — a bundle of this tree as the next
    release, its version)."""
    old = recorded_release(out, version)
    return old, make_bundle(out, NEW), NEW


def make_shared_releases(out: Path) -> tuple[Path, Path, str]:
    """(this tree's wheel as NEW, a bundle of this tree as the release after NEW, its version).

    The shared-database farm arrived after the newest recorded release, so its rolling upgrade
    is shown between two builds of this tree."""
    old = build_wheel(ROOT, out, NEW)
    after = ".".join([*NEW.split(".")[:2], str(int(NEW.split(".")[2]) + 1)])
    return old, make_bundle(out, after), after


def make_bundle(out: Path, version: str) -> Path:
    """A bundle of ``version``, made once a run: the farm, shared-database and deployment
    upgrades install the same two releases, and each bundle costs a full install. The previous
    release (``OLD``) is built from the commit releases.toml records and bundled by its own
    ``openmfa bundle create``; any other version is this tree built as that version."""
    return built_once(f"bundle-{version}", out, lambda where: _make_bundle(where, version))


def _make_bundle(out: Path, version: str) -> Path:
    recorded = version == OLD
    new = recorded_release(out) if recorded else build_wheel(ROOT, out, version)
    scratch = out / f"scratch-{version}"
    run(
        OPENMFA,
        "install",
        "--root",
        str(scratch / "root"),
        "--from-wheel",
        str(new),
        "--record",
        str(scratch / "install.toml"),
    )
    bundle = out / f"openmfa-{version}.tar.gz"
    tool = str(scratch / "root" / "current" / "venv" / "bin" / "openmfa") if recorded else OPENMFA
    run(tool, "bundle", "create", str(bundle), "--record", str(scratch / "install.toml"))
    return bundle


def share_database(nodes: list[Node], url: str) -> None:
    """Point every installed node at one PostgreSQL database, with one data key."""
    first = nodes[0]
    for n in nodes:
        cfg = n.var / "server.toml"
        text = re.sub(r'(\[store\][^\[]*?)url = ""', rf'\1url = "{url}"', cfg.read_text())
        assert url in text, "no [store] url in the installed server.toml"
        cfg.write_text(text)
    first.var.joinpath("openmfa.key").unlink()
    first.cli("init")  # the schema in the shared database, and the farm's data key
    for n in nodes[1:]:
        shutil.copy2(first.var / "openmfa.key", n.var / "openmfa.key")


def install_nodes(
    base: Path, old: Path, names: tuple[str, ...] = NAMES, *, overrides: bool = False
) -> list[Node]:
    """Nodes installed from the previous release's wheel, configured, not started (with
    ``overrides``, their ports are given on the command line, and server.toml names others)."""
    nodes: list[Node] = []
    for name in names:
        where = base / name
        node = Node(
            name,
            where / "root",
            where / "install.toml",
            free_port(),
            free_udp_port(),
            overrides=overrides,
        )
        run(
            OPENMFA,
            "install",
            "--root",
            str(node.root),
            "--from-bundle" if old.name.endswith(".tar.gz") else "--from-wheel",
            str(old),
            "--record",
            str(node.record),
        )
        cfg = node.var / "server.toml"
        text = cfg.read_text()
        port, radius_port = (
            (free_port(), free_udp_port()) if overrides else (node.port, node.radius_port)
        )
        text = text.replace('listen = "127.0.0.1:8480"', f'listen = "127.0.0.1:{port}"')
        text = text.replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{radius_port}"')
        text = text.replace('node_name = ""', f'node_name = "{name}"')
        cfg.write_text(text)
        nodes.append(node)
    return nodes


@dataclass
class Outcome:
    output: str
    seconds: float
    load: Load
    seeds: dict[str, bytes]
    balancer: list[str] = field(default_factory=list)
    """HAProxy's log of its servers' state changes and failed health checks."""

    def failures(self) -> str:
        """What to show when an authentication failed: the first failures, and HAProxy's view."""
        return "\n".join([*self.load.failed[:10], "HAProxy:", *self.balancer[-40:]])


def rolling_upgrade(
    nodes: list[Node],
    bundle: Path,
    work: Path,
    *,
    shared: bool = False,
    hold: bool = False,
    then: Callable[[list[str]], str] | None = None,
) -> Outcome:
    """Make the farm on the previous release, put it under load behind HAProxy, run
    `openmfa farm upgrade` (the previous release's command, on the master; with ``shared``,
    nodes on one PostgreSQL database, on the first node; with ``hold``, not finalized), then
    ``then`` under the same load, given the load-balancer options; its output is appended."""
    a = nodes[0]
    if shared:
        for n in nodes:
            n.cli("farm", "init", "--url", n.url)
            n.start()
    else:
        a.start()
        out = a.cli("farm", "init", "--url", a.url)
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        for n in nodes[1:]:
            n.cli("farm", "join", a.url, "--token", token, "--url", n.url)
            n.start()
    admin = re.search(
        r"(omfa_\S+)", a.cli("apikey", "create", "farm-admin", "--scope", "admin")
    ).group(1)  # type: ignore[union-attr]
    adapter = re.search(
        r"(omfa_\S+)", a.cli("apikey", "create", "gateway", "--scope", "adapter")
    ).group(1)  # type: ignore[union-attr]
    a.cli("radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", RADIUS_SECRET)
    seeds: dict[str, bytes] = {}
    with httpx.Client(base_url=a.url, headers={"authorization": f"Bearer {admin}"}) as api:
        for i in range(USERS):
            name = f"user{i:03d}"
            key = secrets.token_bytes(20)
            contact = {"email": f"{name}@example.org", "phone": f"+1555{i:07d}"}
            assert api.post("/v1/users", json={"name": name, **contact}).status_code == 201
            r = api.post(
                f"/v1/users/{name}/methods",
                json={"kind": "totp", "secret": base64.b32encode(key).decode()},
            )
            assert r.status_code == 201, r.text
            seeds[name] = key

    lb_port = free_port()
    cfg = haproxy_config(work, lb_port, nodes)
    haproxy_log = (work / "haproxy.log").open("a")
    haproxy = subprocess.Popen(
        ["haproxy", "-f", str(cfg), "-db"], stdout=haproxy_log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # HAProxy up, and every node replicated and healthy behind it
            try:
                ready = (
                    httpx.get(f"http://127.0.0.1:{lb_port}/readyz", timeout=1).status_code == 200
                )
            except httpx.HTTPError:
                ready = False
            status = json.loads(a.cli("farm", "status", "--json"))
            healthy = all(n["lag"] == 0 and n["health"] == "ok" for n in status["nodes"])
            if ready and len(status["nodes"]) == len(nodes) and healthy:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.3)

        load = Load(f"http://127.0.0.1:{lb_port}", adapter, [n.radius_port for n in nodes], seeds)
        workers = [
            threading.Thread(target=load.sdk_worker, args=(100_000,)),
            threading.Thread(target=load.radius_worker, args=(100_000,)),
        ]
        for w in workers:
            w.start()
        time.sleep(3)
        started = time.monotonic()
        lb = ["--lb", "haproxy", "--haproxy-socket", str(work / "haproxy.sock")]
        lb += ["--haproxy-backend", "openmfa"]
        try:
            out = a.openmfa(
                "farm",
                "upgrade",
                "--bundle",
                str(bundle),
                *lb,
                *(["--hold"] if hold else []),
                "--data-dir",
                str(a.var),
            )
            seconds = time.monotonic() - started
            if then is not None:
                out += then(lb)
            time.sleep(3)
        finally:
            load.stop.set()
            for w in workers:
                w.join(timeout=60)
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        haproxy_log.close()

    events = [
        line
        for line in (work / "haproxy.log").read_text().splitlines()
        if " is DOWN" in line or " is UP" in line or "check for server" in line
    ]
    return Outcome(out, seconds, load, seeds, events)


def rolling_upgrade_bench(work: Path) -> None:
    """bench/farm.py's third part: print the rolling upgrade's length and failures."""
    work.mkdir(parents=True, exist_ok=True)
    old, bundle, new_version = make_releases(work)
    nodes = install_nodes(work, old)
    try:
        o = rolling_upgrade(nodes, bundle, work)
    finally:
        for n in nodes:
            n.stop()
    print(
        f"rolling upgrade of 3 nodes to {new_version} under load (HAProxy + RADIUS failover): "
        f"{o.seconds:.0f} s, {o.load.ok} authentications accepted, "
        f"{len(o.load.failed)} failed (goal: 0)"
    )
