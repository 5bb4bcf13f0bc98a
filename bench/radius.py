"""RADIUS benchmark: OTP-only Access-Requests against a real `openmfa serve`, 10,000 TOTP users,
with FreeRADIUS answering plain PAP from a users file measured in the same run as the reference.

Prints, for valid and wrong codes at several concurrency levels: requests/s, p50/p99 latency,
lost requests, and the server's CPU time per request (user+system CPU of the server process
divided by the requests it answered — the figure that survives a noisy machine).

    python bench/radius.py                 # ./dev bench-radius
    python bench/radius.py --users 2000 --levels 16
    python bench/radius.py --no-relay      # without the MS-CHAPv2 and EAP relay figures at the end
    python bench/radius.py --callgrind     # + instructions per request under valgrind's callgrind
                                           #   (bench/radius_callgrind.py; a few minutes more)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.services import free_udp_port, freeradius

from openmfa.core.totp import step_at, totp
from openmfa.node.radius_clients import RadiusClients
from openmfa.radius import packet as p
from openmfa.store.database import DataDir, Store
from verify import add_rules, cpu_seconds, peak_rss_mib, populate, start_node, wait_for_fresh_step

SECRET = b"bench-secret-123"
GOAL_RATIO, GOAL_RATE, GOAL_P99_MS = 2.0, 8000, 10.0


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        fut = self.waiting.pop(data[1], None) if len(data) > 1 else None
        if fut is not None and not fut.done():
            fut.set_result(data)


async def load(
    port: int, requests: list[tuple[bytes, bytes]], concurrency: int, timeout: float = 2.0
) -> dict[str, object]:
    """Keep ``concurrency`` requests outstanding (one socket per worker, ids 0..255 in turn)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    counts = {"accept": 0, "reject": 0, "lost": 0}
    it = iter(requests)

    async def worker() -> None:
        transport, proto = await loop.create_datagram_endpoint(
            _Client, remote_addr=("127.0.0.1", port)
        )
        try:
            for raw, _ in it:
                fut: asyncio.Future[bytes] = loop.create_future()
                proto.waiting[raw[1]] = fut
                t0 = time.perf_counter()
                transport.sendto(raw)
                try:
                    reply = await asyncio.wait_for(fut, timeout)
                except TimeoutError:
                    counts["lost"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                counts["accept" if reply[0] == p.ACCESS_ACCEPT else "reject"] += 1
        finally:
            transport.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3
            if latencies
            else float("nan")
        )

    return {
        **counts,
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": pct(0.5),
        "p99": pct(0.99),
    }


def build(users: list[tuple[str, str]], secret: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for i, (name, password) in enumerate(users):
        auth = os.urandom(16)
        attrs = [
            (p.USER_NAME, name.encode()),
            (p.USER_PASSWORD, p.hide_password(password.encode(), secret, auth)),
        ]
        out.append((p.encode_request(p.ACCESS_REQUEST, i % 256, attrs, secret, auth), auth))
    return out


def radclient_file(path: Path, users: list[tuple[str, str]]) -> None:
    path.write_text(
        "\n".join(
            f'User-Name = "{u}"\nUser-Password = "{pw}"\nMessage-Authenticator = 0x00\n'
            for u, pw in users
        )
    )


def radclient_run(
    port: int, file: Path, secret: bytes, parallel: int, timeout: float = 3
) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            "radclient",
            "-q",
            "-s",
            "-t",
            str(timeout),
            "-r",
            "1",
            "-p",
            str(parallel),
            "-f",
            str(file),
            f"127.0.0.1:{port}",
            "auth",
            secret.decode(),
        ],
        capture_output=True,
        text=True,
    )
    found = dict(re.findall(r"^\s*(Accepted|Rejected|Lost)\s*:\s*(\d+)", out.stdout, re.M))
    summary = ", ".join(f"{k.lower()} {v}" for k, v in found.items())
    return time.perf_counter() - t0, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--requests-c1", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="radclient rounds against each server")
    ap.add_argument(
        "--callgrind",
        type=int,
        nargs="?",
        const=2000,
        default=0,
        metavar="N",
        help="then count instructions per request under callgrind, N requests each (2000)",
    )
    ap.add_argument(
        "--no-relay",
        action="store_true",
        help="skip the MS-CHAPv2/EAP relay figures (bench/radius_relay.py) printed at the end",
    )
    ap.add_argument(
        "--rules",
        type=int,
        default=0,
        help="policy rules in place that every request is checked against (none matches)",
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="openmfa-radius-bench-"))
    dd = DataDir(tmp / "node")
    keys, _ = populate(dd, args.users)
    add_rules(dd, args.rules)
    store = Store.open(dd)
    RadiusClients(store).add("bench", "127.0.0.1/32", SECRET.decode())
    store.close()
    names = [f"user{i:05d}" for i in range(args.users)]

    port = free_udp_port()
    proc = start_node(dd, radius=f"127.0.0.1:{port}")
    results: dict[tuple[str, int], dict[str, object]] = {}
    try:
        print(
            f"openmfa serve pid {proc.pid}: {args.users} TOTP users, OTP-only flow, "
            "Message-Authenticator on every request, SQLite synchronous=FULL"
        )
        print(
            f"{'codes':<9}{'conc':>5}{'sent':>7}{'accept':>8}{'reject':>8}{'lost':>6}"
            f"{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU µs/req':>12}"
        )
        used = -1
        for conc in levels:
            for kind in ("valid", "wrong"):
                if kind == "valid":
                    used = wait_for_fresh_step(used)
                    step = used
                else:
                    step = step_at(time.time())
                creds = []
                for name, key in zip(names, keys, strict=True):
                    code = totp(key, step * 30)
                    if kind == "wrong":
                        code = f"{(int(code) + 1) % 1_000_000:06d}"
                    creds.append((name, code))
                if conc == 1:
                    creds = creds[: args.requests_c1]
                reqs = build(creds, SECRET)
                cpu0 = cpu_seconds(proc.pid)
                r = uvloop.run(load(port, reqs, conc))
                cpu = cpu_seconds(proc.pid) - cpu0
                answered = int(r["accept"]) + int(r["reject"])  # type: ignore[call-overload]
                r["cpu_us"] = cpu / max(1, answered) * 1e6
                results[(kind, conc)] = r
                print(
                    f"{kind:<9}{conc:>5}{len(reqs):>7}{r['accept']:>8}{r['reject']:>8}"
                    f"{r['lost']:>6}{r['rate']:>8.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}"
                    f"{r['cpu_us']:>12.0f}"
                )
        # CPU per request with radclient (C, 64 in flight) as the load generator for both
        # servers, in alternating rounds: this machine's speed drifts by tens of percent over
        # a minute, so each comparison is made side by side and the medians are compared.
        users = {n: f"pw-{i}" for i, n in enumerate(names)}
        with freeradius(tmp / "freeradius", users, secret=SECRET.decode()) as fr:
            pap = tmp / "pap.txt"
            radclient_file(pap, list(users.items()))
            radclient_run(fr.port, pap, SECRET, 64)  # warm up
            ours, theirs = [], []
            print()
            for rnd in range(1, args.rounds + 1):
                used = wait_for_fresh_step(used)
                file = tmp / "valid.txt"
                codes = [(n, totp(k, used * 30)) for n, k in zip(names, keys, strict=True)]
                radclient_file(file, codes)
                cpu0 = cpu_seconds(proc.pid)
                wall, summary = radclient_run(port, file, SECRET, 64)
                ours.append((cpu_seconds(proc.pid) - cpu0) / args.users * 1e6)
                print(
                    f"round {rnd}: openmfa, radclient -p 64, {args.users} valid codes: "
                    f"{args.users / wall:.0f} req/s, server CPU {ours[-1]:.0f} µs/req  [{summary}]"
                )
                cpu0 = cpu_seconds(fr.pid)
                wall, summary = radclient_run(fr.port, pap, SECRET, 64)
                theirs.append((cpu_seconds(fr.pid) - cpu0) / len(users) * 1e6)
                print(
                    f"round {rnd}: FreeRADIUS plain PAP, radclient -p 64: "
                    f"{len(users) / wall:.0f} req/s, "
                    f"server CPU {theirs[-1]:.1f} µs/req  [{summary}]"
                )
            reqs = build(list(users.items()), SECRET)
            cpu0 = cpu_seconds(fr.pid)
            r = uvloop.run(load(fr.port, reqs, 16))
            print(
                f"FreeRADIUS plain PAP, bench load generator c=16: {r['rate']:.0f} req/s, "
                f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                f"CPU {(cpu_seconds(fr.pid) - cpu0) / len(users) * 1e6:.1f} µs/req"
            )
        print(f"openmfa peak memory (VmHWM): {peak_rss_mib(proc.pid):.0f} MiB")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    ours_cpu, fr_cpu = statistics.median(ours), statistics.median(theirs)
    print(
        f"\nmedian of {args.rounds} rounds: openmfa {ours_cpu:.0f} µs/req, "
        f"FreeRADIUS {fr_cpu:.1f} µs/req"
    )
    ratio = ours_cpu / fr_cpu
    print(
        f"\nCPU per request, OpenMFA OTP verification / FreeRADIUS plain PAP: {ratio:.1f}x "
        f"(goal <= {GOAL_RATIO}x)"
    )
    best = max((float(v["rate"]) for (k, _), v in results.items() if k == "valid"), default=0.0)  # type: ignore[arg-type]
    print(
        f"best valid-code throughput (bench load generator): {best:.0f}/s (goal >= {GOAL_RATE}/s)"
    )
    if args.callgrind:
        from radius_callgrind import compare  # (it imports this module)

        n = min(args.callgrind, args.users)
        compare(dd, names[:n], keys[:n], tmp / "callgrind")
    if not args.no_relay:
        from radius_relay import relay_figures, summary

        summary(relay_figures(tmp=tmp / "relay"))


if __name__ == "__main__":
    main()
