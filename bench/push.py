"""Push benchmark: 10,000 activated devices long-polling a real Mobile App Web Service at once,
in front of a real `openmfa serve` (separate processes on loopback).

Prints:
- the round trip without the human: authenticate (SDK, method push) -> the device's held poll
  returns the request -> the device signs and sends its answer -> the waiting SDK long-poll
  (`GET /v1/authenticate/{id}?wait=`) is answered; p50/p99, and the delivery part alone;
- the mobile service's memory per connected device (VmRSS growth / devices held);
- RADIUS OTP cost (the devices' offline codes, `bench-radius`'s load generator, c=16): the node's
  CPU per request with no device connected, then with all of them connected, in the same run.

    python bench/push.py                    # ./dev bench-push
    python bench/push.py --devices 2000 --samples 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.e2e.helpers import free_port
from tests.e2e.services import free_udp_port

from openmfa.config import load as load_config
from openmfa.core import push as proto
from openmfa.core.totp import totp
from openmfa.node.apikeys import ApiKeys
from openmfa.node.radius_clients import RadiusClients
from openmfa.store.changes import Change, ChangeWriter
from openmfa.store.database import DataDir, Store
from radius import SECRET, build, load
from verify import cpu_seconds, start_node

GOAL_P99_MS, GOAL_KIB = 50.0, 20.0


def populate(
    dd: DataDir, devices: int
) -> tuple[list[ec.EllipticCurvePrivateKey], list[bytes], str]:
    """Users each with one activated push device, written through the change writer in large
    transactions (as activation writes them). Returns device keys, offline seeds, an admin key
    and leaves a mobile key in mobile.key."""
    store = Store.create(dd, load_config(None))
    keys, seeds = [], []
    try:
        writer = ChangeWriter(store)
        now = time.time()
        for start in range(0, devices, 1000):
            changes: list[Change] = []
            for i in range(start, min(devices, start + 1000)):
                key = ec.generate_private_key(ec.SECP256R1())
                seed = secrets.token_bytes(20)
                keys.append(key)
                seeds.append(seed)
                mid = f"d{i:011d}"
                spki = key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                user = {"id": i + 1, "name": f"user{i:05d}", "display_name": "", "email": "",
                        "phone": "", "enabled": True, "at": now}  # fmt: skip
                method = {
                    "id": mid, "user_id": i + 1, "kind": "push", "label": "bench", "digits": 6,
                    "period": 30, "algorithm": "SHA1", "at": now,
                    "secret_enc": store.box.seal(seed, mid).hex(),
                    "device": {"alg": "ES256", "public_key": spki.hex(), "webpush": "{}"},
                }  # fmt: skip
                changes += [Change("user.add", user), Change("method.add", method)]
            writer.commit(changes)
        token = ApiKeys(store).create("bench", "admin")  # a push by name: the admin scope
        mobile = ApiKeys(store).create("bench-mobile", "mobile")
        (dd.root / "mobile.key").write_text(mobile)
        (dd.root / "mobile.key").chmod(0o600)
        RadiusClients(store).add("bench", "127.0.0.1/32", SECRET.decode(), push="off")
    finally:
        store.close()
    return keys, seeds, token


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Device:
    """One phone: a keep-alive connection to the mobile service, polling and answering."""

    def __init__(self, index: int, key: ec.EllipticCurvePrivateKey, port: int, prefix: str):
        self.id = f"d{index:011d}"
        self.key = key
        self.port = port
        self.prefix = prefix
        self.counter = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def signed(self, body: dict[str, object]) -> bytes:
        payload, signature = proto.sign_message(self.key, body)
        return json.dumps({"payload": payload, "signature": signature}).encode()

    async def poll(self, wait: int) -> list[dict[str, object]]:
        body = {"v": 1, "op": "poll", "device_id": self.id, "ts": int(time.time()),
                "nonce": proto.new_nonce()}  # fmt: skip
        status, raw = await self.post(f"/v1/poll?wait={wait}", self.signed(body))
        if status != 200:
            raise RuntimeError(f"poll: {status} {raw[:200]!r}")
        requests: list[dict[str, object]] = json.loads(raw)["requests"]
        return requests

    async def answer(self, request: dict[str, object], number: str) -> None:
        self.counter += 1
        body = {"v": 1, "op": "answer", "request_id": request["id"], "nonce": request["nonce"],
                "decision": "approve", "number": number, "device_id": self.id,
                "counter": self.counter, "ts": int(time.time())}  # fmt: skip
        status, raw = await self.post("/v1/answer", self.signed(body))
        if status != 200:
            raise RuntimeError(f"answer: {status} {raw[:200]!r}")


async def measure(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="openmfa-push-bench-"))
    dd = DataDir(tmp / "node")
    t0 = time.perf_counter()
    keys, seeds, token = populate(dd, args.devices)
    print(f"{args.devices} users with an activated ES256 device ({time.perf_counter() - t0:.0f} s)")
    udp = free_udp_port()
    node = start_node(dd, radius=f"127.0.0.1:{udp}")
    mport = free_port()
    config = tmp / "mobile.toml"
    config.write_text(
        f'[mobile]\nlisten = "127.0.0.1:{mport}"\n'
        f'nodes = ["http://127.0.0.1:{node.sdk_port}"]\n'
        f'api_key_file = "{dd.root / "mobile.key"}"\nlong_poll_seconds = 60\n'
    )
    mlog = (tmp / "mobile.log").open("w")
    mobile = subprocess.Popen(
        [str(Path(sys.executable).with_name("openmfa")), "mobile", "serve", "--config",
         str(config)], stdout=mlog, stderr=subprocess.STDOUT)  # fmt: skip
    names = [f"user{i:05d}" for i in range(args.devices)]
    devices = [Device(i, k, mport, "/mobile") for i, k in enumerate(keys)]
    numbers: dict[str, str] = {}
    seen: dict[str, float] = {}
    held = asyncio.Event()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{mport}/mobile/healthz")).status_code:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)

            used = [-1]

            async def radius_cpu(label: str) -> float:
                while int(time.time() // 30) <= used[0]:  # a fresh TOTP step: every code new
                    await asyncio.sleep(0.05)
                step = used[0] = int(time.time() // 30)
                n = min(args.devices, args.radius_requests)
                creds = [(names[i], totp(seeds[i], step * 30)) for i in range(n)]
                reqs = build(creds, SECRET)
                cpu0 = cpu_seconds(node.pid)
                r = await load(udp, reqs, 16)
                answered = int(r["accept"]) + int(r["reject"])  # type: ignore[call-overload]
                us = (cpu_seconds(node.pid) - cpu0) / max(1, answered) * 1e6
                print(
                    f"RADIUS OTP c=16, {label}: {r['accept']} accepted of {len(reqs)}, "
                    f"{r['rate']:.0f} req/s, node CPU {us:.0f} µs/req"
                )
                return us

            await radius_cpu("warm-up (users and seeds into the node's cache; not counted)")
            before = [await radius_cpu("no device connected")]
            rss0 = rss_kib(mobile.pid)

            async def phone(d: Device) -> None:
                while True:
                    try:
                        found = await d.poll(55)
                    except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                        print(f"device {d.id}: {exc}")
                        return
                    for request in found:
                        rid = str(request["id"])
                        seen.setdefault(rid, time.perf_counter())
                        while rid not in numbers:  # the person reads the number off the screen
                            await asyncio.sleep(0.001)
                        await d.answer(request, numbers[rid])

            gate = asyncio.Semaphore(256)

            async def connect(d: Device) -> None:
                async with gate:
                    d.reader, d.writer = await asyncio.open_connection("127.0.0.1", mport)
                await phone(d)

            tasks = [asyncio.create_task(connect(d)) for d in devices]
            t0 = time.perf_counter()
            deadline = time.monotonic() + 300
            while True:
                count = (await http.get(f"http://127.0.0.1:{mport}/mobile/healthz")).json()["held"]
                if count >= args.devices or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            held.set()
            print(
                f"{count} devices holding a long-poll ({time.perf_counter() - t0:.0f} s to connect)"
            )
            rss1 = rss_kib(mobile.pid)
            per = (rss1 - rss0) / max(1, count)
            print(
                f"mobile service memory: {rss0 / 1024:.0f} MiB -> {rss1 / 1024:.0f} MiB, "
                f"{per:.1f} KiB per connected device (goal < {GOAL_KIB:.0f} KiB)"
            )
            after = [await radius_cpu(f"{count} devices connected")]

            trips: list[float] = []
            deliveries: list[float] = []
            sample = [
                names[i] for i in range(0, args.devices, max(1, args.devices // args.samples))
            ]
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{node.sdk_port}"
            for name in sample[: args.samples]:
                t = time.perf_counter()
                r = await http.post(
                    base + "/v1/authenticate", json={"user": name, "method": "push"},
                    headers=headers)  # fmt: skip
                pending = r.json()["pending"]
                numbers[pending["id"]] = pending["number"]
                outcome = f"{base}/v1/authenticate/{pending['id']}"
                out = await http.get(outcome, params={"wait": 30}, headers=headers)
                done = time.perf_counter()
                if out.json()["status"] != "accepted":
                    print(f"{name}: {out.json()}")
                    continue
                trips.append((done - t) * 1e3)
                deliveries.append((seen[pending["id"]] - t) * 1e3)
            for task in tasks:
                task.cancel()
            for d in devices:
                if d.writer is not None:
                    d.writer.close()
            deadline = time.monotonic() + 120
            while (await http.get(f"http://127.0.0.1:{mport}/mobile/healthz")).json()["held"]:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            before.append(await radius_cpu("devices gone again"))
    finally:
        mobile.send_signal(signal.SIGTERM)
        node.send_signal(signal.SIGTERM)
        mobile.wait(timeout=60)
        node.wait(timeout=60)
        mlog.close()

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    print(
        f"\nround trip (authenticate -> device sees it -> answer -> SDK long-poll answered), "
        f"{len(trips)} sign-ins: p50 {pct(trips, 0.5):.1f} ms, p99 {pct(trips, 0.99):.1f} ms "
        f"(goal p99 < {GOAL_P99_MS:.0f} ms); delivery to the device p50 "
        f"{pct(deliveries, 0.5):.1f} ms, p99 {pct(deliveries, 0.99):.1f} ms"
    )
    print(
        f"RADIUS OTP node CPU: {statistics.mean(before):.0f} µs/req without devices "
        f"(runs: {', '.join(f'{x:.0f}' for x in before)}), {after[0]:.0f} µs/req with "
        f"{args.devices} connected: ratio {after[0] / statistics.mean(before):.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200, help="round trips measured")
    ap.add_argument("--radius-requests", type=int, default=5000)
    args = ap.parse_args()
    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
