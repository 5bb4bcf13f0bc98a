"""The administration console's node side: what its pages ask of a real `openmfa serve` (SQLite,
one data file) holding 50,000 users with TOTP and 1,000,000 audit records.

Prints: user search (by the start of a name, by state) p50/p99, goal p99 < 100 ms; the
dashboard and a month's report — the first answer after the node starts (it waits for the whole
log to be folded) and then p50/p99 —, goal < 1 s; and the SDK's accepted verifications per
second at concurrency 16 without anyone reading reports, and with a console reading the
dashboard and the month report every second (rounds alternate; the ratio of the medians).

    python bench/console.py                  # ./dev bench-console
    python bench/console.py --users 5000 --records 100000 --rounds 1
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
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
from loadgen import run
from openmfa.node.apikeys import ApiKeys
from openmfa.store.database import DataDir, Store
from verify import populate, requests_for, start_node, wait_for_fresh_step

SEARCH_GOAL_MS, REPORT_GOAL_MS = 100.0, 1000.0
ACTIONS = ["authenticate"] * 8 + ["push.answer", "primary", "portal.sign_in", "lockout"]
CLIENTS = ["radius:vpn", "radius:wifi", "bench", "portal (in serve)", "cli"]
REASONS = ["wrong_code", "locked", "no_method", "pending"]


def add_audit(dd: DataDir, records: int, users: int, days: float) -> None:
    """``records`` audit rows over the last ``days`` days, in time order (as a node writes
    them), straight into the data file."""
    now = time.time()
    rnd = random.Random(7)
    conn = sqlite3.connect(dd.data_file)
    try:
        for start in range(0, records, 50_000):
            n = min(50_000, records - start)
            times = sorted(now - days * 86400 * (1 - (start + i) / records) for i in range(n))
            rows = []
            for at in times:
                i = rnd.randrange(users)
                ok = rnd.random() < 0.8
                rows.append(
                    (at, "n1", rnd.choice(ACTIONS), f"user{i:05d}", rnd.choice(CLIENTS),
                     f"m{i:011d}", "accepted" if ok else "rejected",
                     "" if ok else rnd.choice(REASONS), "", "", "")
                )  # fmt: skip
            conn.executemany(
                "INSERT INTO audit (at, node, action, user_name, client, method_id, result, "
                "reason, request_id, detail, source_enc) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            conn.commit()
    finally:
        conn.close()


def timed(c: httpx.Client, path: str, params: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(path, params=params)
        out.append((time.perf_counter() - t0) * 1e3)
        r.raise_for_status()
    return out


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def line(name: str, samples: list[float], goal: float) -> str:
    p50, p99 = pct(samples, 50), pct(samples, 99)
    verdict = "met" if p99 < goal else "NOT met"
    return (
        f"{name:<44}{len(samples):>6}{p50:>9.1f}{p99:>9.1f}   goal p99 < {goal:.0f} ms: {verdict}"
    )


def verify_rate(port: int, keys: list[bytes], token: str, used: int) -> tuple[float, int]:
    used = wait_for_fresh_step(used)
    res = uvloop.run(run("127.0.0.1", port, requests_for(keys, used, token, accepted=True), 16))
    return res.accepted / res.elapsed, used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=28.0, help="the audit records' time span")
    ap.add_argument("--rounds", type=int, default=3, help="verification rounds of each kind")
    ap.add_argument("--verify-users", type=int, default=5000, help="users verified per round")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="openmfa-bench-console-"))
    dd = DataDir(tmp / "node")
    t0 = time.perf_counter()
    keys, token = populate(dd, args.users)
    add_audit(dd, args.records, args.users, args.days)
    store = Store.open(dd)
    admin = ApiKeys(store).create("console-bench", "admin")
    store.close()
    print(
        f"{args.users} users with TOTP and {args.records:,} audit records over {args.days:.0f} "
        f"days in {time.perf_counter() - t0:.0f} s ({dd.data_file})"
    )
    proc = start_node(dd, radius="off")
    started = time.perf_counter()
    try:
        url = f"http://127.0.0.1:{proc.sdk_port}"
        h = {"authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=url, headers=h, timeout=120) as c:
            first = timed(c, "/v1/reports/dashboard", {}, 1)[0]
            waited = (time.perf_counter() - started) * 1e3
            months = c.get("/v1/reports/month").json()["months"]
            month = max(
                months,
                key=lambda m: sum(
                    x["count"]
                    for x in c.get("/v1/reports/month", params={"month": m}).json()["days"]
                ),
            )
            print(
                f"first dashboard after the node started: {first:.0f} ms (the whole log folded "
                f"on start; {waited:.0f} ms from start to answer)\n"
            )
            print(f"{'request (SDK, one at a time)':<44}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}")
            prefixes = [f"user{random.randrange(args.users):05d}"[:7] for _ in range(200)]
            search = []
            for p in prefixes:
                search += timed(c, "/v1/users", {"prefix": p, "limit": "50"}, 1)
            print(line("user search by the start of a name", search, SEARCH_GOAL_MS))
            locked = timed(c, "/v1/users", {"state": "locked", "limit": "50"}, 50)
            print(line("user search by state (locked)", locked, SEARCH_GOAL_MS))
            dash = timed(c, "/v1/reports/dashboard", {}, 50)
            print(line(f"dashboard over {args.records:,} records", dash, REPORT_GOAL_MS))
            rep = timed(c, "/v1/reports/month", {"month": month}, 50)
            print(line(f"month report {month} over {args.records:,} records", rep, REPORT_GOAL_MS))

        verify_keys = keys[: args.verify_users]
        rates: dict[str, list[float]] = {"without reports read": [], "with a console reading": []}
        used = -1
        for _ in range(args.rounds):
            rate, used = verify_rate(proc.sdk_port, verify_keys, token, used)
            rates["without reports read"].append(rate)
            stop = threading.Event()

            def reader(stop: threading.Event = stop) -> None:
                with httpx.Client(base_url=url, headers=h, timeout=120) as rc:
                    while not stop.wait(1.0):
                        rc.get("/v1/reports/dashboard").raise_for_status()
                        rc.get("/v1/reports/month", params={"month": month}).raise_for_status()

            th = threading.Thread(target=reader, daemon=True)
            th.start()
            try:
                rate, used = verify_rate(proc.sdk_port, verify_keys, token, used)
            finally:
                stop.set()
                th.join(timeout=30)
            rates["with a console reading"].append(rate)
        print()
        for name, got in rates.items():
            print(
                f"accepted verifications/s at c=16, {name:<24} "
                + " ".join(f"{r:.0f}" for r in got)
                + f"  (median {statistics.median(got):.0f})"
            )
        a, b = (statistics.median(v) for v in rates.values())
        print(f"ratio, with a console reading / without: {b / a:.3f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
