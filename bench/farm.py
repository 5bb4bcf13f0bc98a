"""Farm benchmark: replication lag, a three-node farm behind HAProxy vs one node, and the full
rolling upgrade under load.

1. Replication lag: a master and two subordinates (real `openmfa serve` processes on loopback);
   users are created on the master at a steady rate; each subordinate's position is sampled
   (signed ``GET /v1/farm/hello``) and the lag of every write is the time until both have it.
2. Authentication throughput (TOTP, accepted codes, bench/loadgen.py at one concurrency) against
   the master alone, then through HAProxy in front of all three (subordinates claim every code
   at the master, so a code is still used once farm-wide).
3. The rolling upgrade scenario of tests/e2e/test_farm_upgrade.py (three installed nodes on the
   previous release, HAProxy, SDK and RADIUS load): its length and failed authentications.
4. ``--deployment`` (alone): the whole deployment (three nodes, two portal and two mobile hosts
   behind HAProxy, an adapter host: LemonLDAP::NG and nginx) upgraded by `openmfa farm upgrade`
   under SDK, RADIUS, push, portal (forms and Chromium), forward-auth and LemonLDAP::NG load
   (tests/e2e/deployment_scenario.py): per-channel counts and times, the upgrade's length, the
   longest any single sign-in took, and the most the upgrade added to one (its longest minus
   its channel's median).

    python bench/farm.py                     # ./dev bench-farm
    python bench/farm.py --skip-upgrade --users 1000
    python bench/farm.py --deployment        # ./dev bench-farm --deployment
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.helpers import free_port

import loadgen
from openmfa.farm import membership
from openmfa.farm.follower import hello
from openmfa.node.apikeys import ApiKeys
from openmfa.store.database import DataDir, Store
from verify import populate, requests_for, wait_for_fresh_step

OPENMFA = str(Path(sys.executable).with_name("openmfa"))


def cli(dd: Path, *args: str) -> str:
    out = subprocess.run(
        [OPENMFA, *args, "--data-dir", str(dd)], capture_output=True, text=True, check=True
    )
    return out.stdout


def serve(dd: Path, port: int) -> subprocess.Popen[bytes]:
    log = (dd / "bench-serve.log").open("w")
    proc = subprocess.Popen(
        [OPENMFA, "serve", "--data-dir", str(dd), "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"openmfa serve did not start: {(dd / 'bench-serve.log').read_text()}")


def name_node(dd: Path, name: str) -> None:
    cfg = dd / "server.toml"
    text = cfg.read_text() if cfg.exists() else ""
    if not text:
        from openmfa.config import default_text

        text = default_text()
    text = text.replace('node_name = ""', f'node_name = "{name}"')
    text = text.replace('listen = "127.0.0.1:1812"', 'listen = ""')
    cfg.write_text(text)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def replication_lag(
    a: Path, subs: list[Path], url: str, admin: str, rate: float, seconds: float
) -> None:
    store = Store.open(DataDir(a))
    m = membership.load(store)
    assert m is not None
    urls = membership.members(store)
    store.close()
    samples: dict[str, list[tuple[float, int]]] = {}
    stop = threading.Event()

    def sample(name: str, node_url: str) -> None:
        out = samples.setdefault(name, [])
        while not stop.is_set():
            said = hello(m, "bench", node_url)
            if said is not None:
                out.append((time.perf_counter(), said.position))
            time.sleep(0.005)

    threads = [
        threading.Thread(target=sample, args=(n, u)) for n, u in urls.items() if n != "node-a"
    ]
    for th in threads:
        th.start()
    writes: list[tuple[float, int]] = []
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {admin}"}) as api:
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            r = api.post("/v1/users", json={"name": f"lag{i:06d}"})
            assert r.status_code == 201, r.text
            t = time.perf_counter()
            said = hello(m, "bench", url)
            assert said is not None
            writes.append((t, said.position))
            i += 1
    time.sleep(2)
    stop.set()
    for th in threads:
        th.join()
    lags: list[float] = []
    for t, pos in writes:
        arrival = 0.0
        for series in samples.values():
            first = next((st for st, sp in series if sp >= pos and st >= t - 0.5), None)
            if first is None:
                arrival = float("inf")
                break
            arrival = max(arrival, first - t)
        lags.append(max(0.0, arrival) * 1000)
    print(
        f"replication lag, {len(writes)} writes at {len(writes) / seconds:.0f}/s to the master, "
        f"both subordinates (sampled every ~5 ms): p50 {pct(lags, 50):.1f} ms, "
        f"p99 {pct(lags, 99):.1f} ms, max {max(lags):.1f} ms"
    )


def throughput(label: str, port: int, keys: list[bytes], token: str, conc: int, used: int) -> int:
    step = wait_for_fresh_step(used)
    reqs = requests_for(keys, step, token, accepted=True)
    r = uvloop.run(loadgen.run("127.0.0.1", port, reqs, conc))
    print(
        f"{label:<34} c={conc}: {r.accepted}/{len(reqs)} accepted, {r.errors} errors, "
        f"{len(reqs) / r.elapsed:.0f} req/s, p50 {r.pct(50) * 1000:.2f} ms, "
        f"p99 {r.pct(99) * 1000:.2f} ms"
    )
    return step


def haproxy(work: Path, port: int, servers: dict[str, int]) -> subprocess.Popen[bytes]:
    lines = "\n".join(f"    server {n} 127.0.0.1:{p} check inter 500" for n, p in servers.items())
    cfg = work / "haproxy.cfg"
    cfg.write_text(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n"
        "    timeout server 30s\n    retries 3\n    option redispatch\n"
        f"frontend sdk\n    bind 127.0.0.1:{port}\n    default_backend openmfa\n"
        f"backend openmfa\n    balance roundrobin\n    option http-keep-alive\n{lines}\n"
    )
    proc = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"])
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("haproxy did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=50.0, help="writes/s for the lag measurement")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--skip-upgrade", action="store_true")
    ap.add_argument(
        "--deployment",
        action="store_true",
        help="only the whole-deployment upgrade (nodes, portal and mobile hosts) under load",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openmfa-farm-bench-"))
    if args.deployment:
        deployment_bench(tmp / "deployment")
        return
    a, b, c = tmp / "a", tmp / "b", tmp / "c"
    keys, adapter = populate(DataDir(a), args.users)
    store = Store.open(DataDir(a))
    admin = ApiKeys(store).create("bench-admin", "admin")
    store.close()
    name_node(a, "node-a")
    ports = {"node-a": free_port(), "node-b": free_port(), "node-c": free_port()}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    procs = [serve(a, ports["node-a"])]
    try:
        out = cli(a, "farm", "init", "--url", url["node-a"])
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        for dd, name in ((b, "node-b"), (c, "node-c")):
            dd.mkdir()
            name_node(dd, name)
            cli(dd, "farm", "join", url["node-a"], "--token", token, "--url", url[name])
            procs.append(serve(dd, ports[name]))
        print(f"farm of 3 nodes (SQLite synchronous=FULL), {args.users} TOTP users")
        replication_lag(a, [b, c], url["node-a"], admin, args.rate, args.seconds)
        used = throughput(
            "one node (the master, directly)", ports["node-a"], keys, adapter, args.concurrency, -1
        )
        lb_port = free_port()
        lb = haproxy(tmp, lb_port, ports)
        try:
            throughput(
                "three nodes through HAProxy", lb_port, keys, adapter, args.concurrency, used
            )
        finally:
            lb.terminate()
            lb.wait()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    if not args.skip_upgrade:
        from tests.e2e.farm_scenario import rolling_upgrade_bench

        rolling_upgrade_bench(tmp / "upgrade")


def deployment_bench(work: Path) -> None:
    """The scenario of tests/e2e/test_deployment_upgrade.py, finalized: per-channel counts,
    the upgrade's length, and the longest any single sign-in waited while it ran."""
    from tests.e2e.deployment_scenario import A, B, install, upgrade_under_load

    work.mkdir(parents=True)
    d = install(work)
    try:
        o = upgrade_under_load(d, hold=False)
    finally:
        d.stop()
    print(
        f"whole-deployment upgrade {A} -> {B}: 3 nodes, 2 portal hosts, 2 mobile hosts, "
        "1 adapter host (LemonLDAP::NG, nginx)"
    )
    print(o.output)  # the upgrade's time-stamped steps, to set beside the slowest sign-ins
    print(o.report())
    if o.load.oidc is not None:  # A has no provider: the channels check its clear refusals
        print(o.load.oidc.summary())
    signins = {name: c for name, c in o.load.channels.items() if name != "guard" and c.took}
    longest = max(signins.values(), key=lambda c: c.longest)
    added = {name: c.longest - statistics.median(c.took) for name, c in signins.items()}
    worst = max(added, key=lambda name: added[name])
    failed = sum(len(c.failed) for c in signins.values())
    print(
        f"longest single sign-in: {longest.longest:.2f} s ({longest.name}); the most the upgrade "
        f"added to one (its longest minus its channel's median): {added[worst]:.2f} s ({worst}; "
        "goal <= 2 s). The guard's probes are refusals, not sign-ins: not counted here"
    )
    print(
        f"failed {failed}, let in without a second factor "
        f"{len(o.load.channels['guard'].failed)} (goal: 0 and 0)"
    )


if __name__ == "__main__":
    main()
