"""User Portal benchmark: a real `openmfa portal serve` in front of a real `openmfa serve`
(separate processes on loopback), driven over HTTP as browsers would (cookies, CSRF tokens).

Prints:
- the sign-in page's latency p50/p99 at concurrency 16 (returning visitors: their cookie);
- complete sign-ins per second (sign-in page, password, code page, a TOTP code; c=16), every
  one checked to land on "My methods";
- the "My methods" page's latency p50/p99 at c=16 (signed-in sessions; one SDK call each);
- the "Where you are signed in" page's latency p50/p99 at c=16 (one SDK call each: the
  sessions and the remembered browsers together);
- the portal's memory (VmRSS) after it all, and per signed-in session.
The goal the issue names: a sign-in page under 20 ms p99 on this machine.

    python bench/portal.py                  # ./dev bench-portal
    python bench/portal.py --users 200 --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.helpers import free_port, start_service, stop

import wrk_load
from openmfa.config import load as load_config
from openmfa.core.totp import totp
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.store.database import DataDir, Store
from verify import start_node

CONCURRENCY = 16
GOAL_P99_MS = 20.0
PASSWORD = "bench portal password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def populate(dd: DataDir, users: int) -> tuple[list[bytes], str]:
    """Users with a password and an authenticator app; returns their keys and a portal key."""
    store = Store.create(dd, load_config(None))
    try:
        accounts = Accounts(store, load_config(None))
        keys = []
        for i in range(users):
            name = f"user{i:04d}"
            accounts.add_user(name)
            set_password(store, accounts, name, PASSWORD)
            done = accounts.enroll(name, "totp")
            assert done.secret is not None
            secret = done.secret + "=" * (-len(done.secret) % 8)
            keys.append(base64.b32decode(secret))
        key = ApiKeys(store).create("portal", "portal")
    finally:
        store.close()
    return keys, key


def wrk(url: str, cookie: str, seconds: int) -> tuple[float, float, float]:
    return wrk_load.wrk(url, seconds, "-H", f"Cookie: {cookie}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def latency(clients: list[httpx.AsyncClient], path: str, requests: int) -> list[float]:
    samples: list[float] = []
    per = requests // len(clients)

    async def worker(c: httpx.AsyncClient) -> None:
        for _ in range(per):
            t0 = time.perf_counter()
            r = await c.get(path)
            samples.append(time.perf_counter() - t0)
            assert r.status_code == 200, (r.status_code, r.text[:200])

    await asyncio.gather(*(worker(c) for c in clients))
    return samples


async def sign_in(c: httpx.AsyncClient, user: str, key: bytes, step: int) -> None:
    page = await c.get("/sign-in")
    token = CSRF.search(page.text)
    assert token, page.text[:300]
    r = await c.post("/sign-in", data={"csrf": token[1], "user": user, "password": PASSWORD})
    assert r.status_code == 303, r.text[:300]
    page = await c.get("/second-factor")
    token = CSRF.search(page.text)
    assert token
    code = totp(key, step * 30.0)
    r = await c.post("/second-factor", data={"csrf": token[1], "code": code})
    assert r.status_code == 303 and r.headers["location"].endswith("/methods"), r.text[:300]


async def run(portal: str, keys: list[bytes], requests: int, seconds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=portal) as visitor:
        await visitor.get("/sign-in")  # the cookie a returning visitor has
        cookie = "; ".join(f"{k}={v}" for k, v in visitor.cookies.items())
    await asyncio.to_thread(wrk, portal + "/sign-in", cookie, 2)  # warm-up
    out["sign_in_p50"], out["sign_in_p99"], out["sign_in_rps"] = await asyncio.to_thread(
        wrk, portal + "/sign-in", cookie, seconds
    )

    # A loaded machine (others' work beside the benchmark) makes 16 password checks at once
    # take longer than httpx's 5 seconds: the figures are latencies, not a time limit.
    people = [httpx.AsyncClient(base_url=portal, limits=limits, timeout=60.0) for _ in keys]
    queue = list(enumerate(people))
    step = int(time.time() // 30)

    async def signer() -> None:
        while queue:
            i, c = queue.pop()
            await sign_in(c, f"user{i:04d}", keys[i], step)

    t0 = time.perf_counter()
    await asyncio.gather(*(signer() for _ in range(CONCURRENCY)))
    out["sign_ins_per_s"] = len(people) / (time.perf_counter() - t0)
    samples = await latency(people[:CONCURRENCY], "/methods", requests)
    out["methods_p50"], out["methods_p99"] = percentiles(samples)
    cookie = "; ".join(f"{k}={v}" for k, v in people[0].cookies.items())
    out["methods_wrk_p50"], out["methods_wrk_p99"], out["methods_rps"] = await asyncio.to_thread(
        wrk, portal + "/methods", cookie, seconds
    )
    out["sessions_wrk_p50"], out["sessions_wrk_p99"], out["sessions_rps"] = await asyncio.to_thread(
        wrk, portal + "/sessions", cookie, seconds
    )
    for c in people:
        await c.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=160, help="people who sign in (each once)")
    ap.add_argument("--requests", type=int, default=1600, help="My methods loads (httpx)")
    ap.add_argument("--seconds", type=int, default=10, help="each wrk run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="openmfa-bench-portal-") as tmp:
        dd = DataDir(Path(tmp) / "node")
        dd.root.mkdir()
        print(f"setting up {args.users} users (password + authenticator app)...", flush=True)
        keys, key = populate(dd, args.users)
        # Codes are taken once per 30-second step: start the sign-ins early in a step.
        while time.time() % 30 > 12:
            time.sleep(0.5)
        node = start_node(dd, radius="off")
        folder = Path(tmp) / "portal"
        folder.mkdir()
        (folder / "portal.key").write_text(key + "\n")
        (folder / "portal.key").chmod(0o600)
        port = free_port()
        (folder / "portal.toml").write_text(
            f'[portal]\nlisten = "127.0.0.1:{port}"\n'
            f'nodes = ["http://127.0.0.1:{node.sdk_port}"]\napi_key_file = "portal.key"\n'
            "attempts_per_minute = 1000000\n"
        )
        url = f"http://127.0.0.1:{port}/portal"
        portal = start_service(
            ["portal", "serve", "--config", str(folder / "portal.toml")],
            url + "/healthz",
            folder / "portal.log",
        )
        try:
            idle_kib = vm_rss_kib(portal.pid)
            figures = asyncio.run(run(url, keys, args.requests, args.seconds))
            rss_kib = vm_rss_kib(portal.pid)
        finally:
            stop(portal)
            node.terminate()
            node.wait(timeout=30)
    p99 = figures["sign_in_p99"]
    verdict = "met" if p99 < GOAL_P99_MS else "NOT met"
    print(
        f"sign-in page (wrk, c={CONCURRENCY}, {args.seconds} s): p50 "
        f"{figures['sign_in_p50']:.2f} ms, p99 {p99:.2f} ms, {figures['sign_in_rps']:.0f} "
        f"pages/s (goal p99 < {GOAL_P99_MS:g} ms: {verdict})"
    )
    print(
        f"complete sign-ins (password + code, c={CONCURRENCY}, {args.users} people): "
        f"{figures['sign_ins_per_s']:.1f} per second"
    )
    print(
        f"My methods page (wrk, c={CONCURRENCY}, one signed-in session, each asks the node): "
        f"p50 {figures['methods_wrk_p50']:.2f} ms, p99 {figures['methods_wrk_p99']:.2f} ms, "
        f"{figures['methods_rps']:.0f} pages/s"
    )
    print(
        f"My methods page (Python httpx clients, c={CONCURRENCY}, {CONCURRENCY} sessions): "
        f"p50 {figures['methods_p50']:.1f} ms, p99 {figures['methods_p99']:.1f} ms"
    )
    print(
        f"Where you are signed in (wrk, c={CONCURRENCY}, one signed-in session, each asks the "
        f"node): p50 {figures['sessions_wrk_p50']:.2f} ms, p99 {figures['sessions_wrk_p99']:.2f} "
        f"ms, {figures['sessions_rps']:.0f} pages/s"
    )
    per = (rss_kib - idle_kib) / max(1, args.users)
    print(
        f"portal memory: {idle_kib / 1024:.1f} MiB idle, {rss_kib / 1024:.1f} MiB after "
        f"({per:.1f} KiB per signed-in session)"
    )


if __name__ == "__main__":
    main()
