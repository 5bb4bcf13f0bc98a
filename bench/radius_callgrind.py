"""Instructions per RADIUS request under valgrind's callgrind: `openmfa serve` answering OTP-only
Access-Requests (valid TOTP codes, Message-Authenticator, every acceptance committed) against
FreeRADIUS answering the same number of plain PAP requests, both driven by radclient -p 64.

Instructions are what a request costs on any machine (seconds vary with the machine and its
load; this machine's ``perf stat`` cannot count instructions). Each server runs under callgrind
with instrumentation off; it is warmed up (every user once: caches filled, code paths loaded),
then ``callgrind_control -i on``, the measured requests, ``-i off``. Counted: user-space
instructions of every thread of the server process (system calls' kernel time is not counted;
the CPU-per-request figures of ``bench/radius.py`` count it).

    python bench/radius_callgrind.py                     # 2000 requests each
    python bench/radius_callgrind.py --requests 500 --annotate 25
    python bench/radius_callgrind.py --profile           # + the node's Python profile (cProfile)
    python bench/radius_callgrind.py --rules 50          # with 50 policy rules in place
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.helpers import free_port, stop
from tests.e2e.services import free_udp_port, freeradius

from openmfa.core.totp import totp
from openmfa.node.radius_clients import RadiusClients
from openmfa.store.database import DataDir, Store
from radius import SECRET, radclient_file, radclient_run
from verify import add_rules, populate, wait_for_fresh_step

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]


def _callgrind(out: Path) -> list[str]:
    return [*VALGRIND, f"--callgrind-out-file={out}"]


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def totals(out: Path) -> int:
    """The instructions a callgrind output file counted."""
    text = out.read_text(errors="replace")
    found = re.findall(r"^totals:\s*(\d+)", text, re.M)  # one per part of the file
    if not found:
        raise SystemExit(f"no totals in {out}")
    return sum(int(n) for n in found)


def by_object(out: Path) -> dict[str, int]:
    """Self cost by shared object (the interpreter, SQLite, libcrypto, ...), read straight from
    the callgrind file: a cost line counts for the current ``ob=``, except the line after a
    ``calls=`` (that one is the callee's inclusive cost)."""
    names: dict[str, str] = {}
    costs: dict[str, int] = {}
    current, after_call = "?", False
    with out.open(errors="replace") as f:
        for line in f:
            head = line[:1]
            if head.isdigit() or head in "+-*":
                if after_call:
                    after_call = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    costs[current] = costs.get(current, 0) + int(parts[1])
            elif line.startswith(("ob=", "cob=")):
                found = re.match(r"c?ob=(?:\((\d+)\))?\s*(.*)", line.rstrip("\n"))
                assert found is not None
                ident, name = found.groups()
                if ident is not None and name:
                    names[ident] = name
                elif ident is not None:
                    name = names.get(ident, "?")
                if line.startswith("ob="):
                    current = Path(name).name or "?"
            elif line.startswith("calls="):
                after_call = True
    return costs


def annotate(out: Path, lines: int) -> str:
    """callgrind_annotate's top ``lines`` functions by self cost."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=99", str(out)], capture_output=True, text=True
    ).stdout
    rows = [ln for ln in text.splitlines() if re.match(r"^\s*[\d,]+ \(", ln)]
    return "\n".join(rows[:lines])


@dataclass
class Counted:
    """One server's measurement: the load's instructions and the same server idle."""

    answered: int
    summary: str
    busy: int
    """Instructions while the requests were answered (every thread)."""
    seconds: float
    """How long that took under callgrind."""
    idle: int
    """Instructions in ``IDLE_SECONDS`` with nothing to answer (timers, housekeeping)."""
    objects: dict[str, int]
    """``busy`` by shared object."""

    @property
    def per_request(self) -> float:
        return self.busy / max(1, self.answered)

    @property
    def background(self) -> float:
        """Per request: what the server does by the clock whatever the load. Under callgrind a
        request takes ~50 times longer, so this counts ~50 times what it costs at full speed."""
        return self.idle / IDLE_SECONDS * self.seconds / max(1, self.answered)


IDLE_SECONDS = 10.0


def count(pid: int, out: Path, load: Callable[[], str]) -> Counted:
    """Instrument the (warmed-up) server ``pid``: ``IDLE_SECONDS`` idle, then ``load()``."""
    for old in out.parent.glob(out.name + ".*"):
        old.unlink()
    _control(pid, "-i", "on")
    time.sleep(IDLE_SECONDS)
    _control(pid, "-d", "idle")
    t0 = time.monotonic()
    summary = load()
    seconds = time.monotonic() - t0
    _control(pid, "-d", "busy")
    _control(pid, "-i", "off")
    idle_file, busy_file = (out.with_name(f"{out.name}.{n}") for n in (1, 2))
    return Counted(
        _answered(summary),
        summary,
        totals(busy_file),
        seconds,
        totals(idle_file),
        by_object(busy_file),
    )


@contextmanager
def node_under_callgrind(
    dd: DataDir, out: Path, radius_port: int, profile: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`openmfa serve` under callgrind (or, with ``profile``, under cProfile on every thread
    instead), back once it is ready."""
    sdk_port = free_port()
    serve = [
        "serve",
        "--data-dir",
        str(dd.root),
        "--listen",
        f"127.0.0.1:{sdk_port}",
        "--radius-listen",
        f"127.0.0.1:{radius_port}",
    ]
    if profile is not None:
        argv = [sys.executable, str(ROOT / "bench" / "profile_threads.py"), str(profile), *serve]
    else:
        argv = [*_callgrind(out), sys.executable, str(Path(sys.executable).with_name("openmfa"))]
        argv += serve
    log = out.with_suffix(".log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # Python's imports under callgrind take minutes
        while True:
            if proc.poll() is not None:
                raise SystemExit("openmfa serve exited: " + out.with_suffix(".log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{sdk_port}/readyz", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("openmfa serve under callgrind did not become ready")
            time.sleep(0.5)
        yield proc
    finally:
        stop(proc)
        log.close()


@contextmanager
def freeradius_under_callgrind(
    workdir: Path, users: dict[str, str], out: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """FreeRADIUS with the exact configuration ``tests.e2e.services.freeradius`` writes, started
    a second time from a copy of it, under callgrind, on its own port."""
    with freeradius(workdir / "made", users, secret=SECRET.decode()):
        copy = workdir / "traced"
        shutil.copytree(workdir / "made", copy, ignore=shutil.ignore_patterns("*.log", "*.pid"))
    conf = (copy / "radiusd.conf").read_text().replace(str(workdir / "made"), str(copy))
    port = free_udp_port()
    conf = re.sub(r"(\n\s*port = )\d+", rf"\g<1>{port}", conf)
    (copy / "radiusd.conf").write_text(conf)
    log = (copy / "freeradius.log").open("wb")
    proc = subprocess.Popen(
        [*_callgrind(out), "freeradius", "-f", "-d", str(copy), "-n", "radiusd"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit("freeradius exited: " + (copy / "freeradius.log").read_text())
            probe = subprocess.run(
                ["radclient", "-t", "5", "-r", "1", f"127.0.0.1:{port}", "status", SECRET.decode()],
                input=b"Message-Authenticator = 0x00\n",
                capture_output=True,
            )
            if b"Received" in probe.stdout:
                break
            if time.monotonic() > deadline:
                raise SystemExit("freeradius under callgrind did not answer")
        yield port, proc
    finally:
        stop(proc)
        log.close()


def _answered(summary: str) -> int:
    found = dict(re.findall(r"(accepted|rejected) (\d+)", summary))
    return int(found.get("accepted", 0)) + int(found.get("rejected", 0))


def measure_node(
    dd: DataDir, names: list[str], keys: list[bytes], tmp: Path, profile: Path | None = None
) -> Counted:
    """``len(names)`` valid codes, each user's second sign-in (the first warmed the node up)."""
    out = tmp / "openmfa.callgrind"
    port = free_udp_port()
    file = tmp / "otp.txt"

    def send() -> str:
        return radclient_run(port, file, SECRET, 64, timeout=30)[1]

    with node_under_callgrind(dd, out, port, profile) as proc:
        used = -1
        for phase in ("warm-up", "measured"):
            used = wait_for_fresh_step(used)
            codes = [(n, totp(k, used * 30)) for n, k in zip(names, keys, strict=True)]
            radclient_file(file, codes)
            if phase == "warm-up" or profile is not None:
                summary = send()
            else:
                return count(proc.pid, out, send)
    return Counted(_answered(summary), summary, 0, 0.0, 0, {})


def measure_freeradius(names: list[str], tmp: Path) -> Counted:
    out = tmp / "freeradius.callgrind"
    users = {n: f"pw-{i}" for i, n in enumerate(names)}
    file = tmp / "pap.txt"
    radclient_file(file, list(users.items()))
    with freeradius_under_callgrind(tmp / "freeradius", users, out) as (port, proc):

        def send() -> str:
            return radclient_run(port, file, SECRET, 64, timeout=30)[1]

        send()  # warm-up
        return count(proc.pid, out, send)


def _objects(counted: Counted, lines: int) -> list[str]:
    total = max(1, sum(counted.objects.values()))
    top = sorted(counted.objects.items(), key=lambda kv: -kv[1])[:lines]
    return [
        f"{name[:34]:<34} {cost / max(1, counted.answered):>9,.0f} {cost / total:>5.0%}"
        for name, cost in top
    ]


def compare(
    dd: DataDir, names: list[str], keys: list[bytes], tmp: Path, annotate_lines: int = 0
) -> float:
    """Print both servers' instructions per request, their ratio and where the instructions
    go; returns the ratio."""
    tmp.mkdir(parents=True, exist_ok=True)
    print(
        f"\ncallgrind: {len(names)} requests to each server after a warm-up, radclient -p 64; "
        f"every thread counted"
    )
    ours = measure_node(dd, names, keys, tmp)
    theirs = measure_freeradius(names, tmp)
    for name, c in (("openmfa OTP-only, valid codes", ours), ("FreeRADIUS plain PAP", theirs)):
        print(
            f"callgrind: {name}: {c.per_request:,.0f} instructions per request "
            f"({c.busy:,} / {c.answered} in {c.seconds:.1f} s; of them {c.background:,.0f} per "
            f"request the clock's housekeeping while idle)  [{c.summary}]"
        )
    ratio = ours.per_request / theirs.per_request
    net = (ours.per_request - ours.background) / max(1.0, theirs.per_request - theirs.background)
    print(
        f"instructions per request, OpenMFA OTP / FreeRADIUS PAP: {ratio:.2f}x "
        f"({net:.2f}x without the idle housekeeping, which at full speed is ~50 times less "
        "per request)"
    )
    print("\nwhere the instructions go (self cost by shared object, per request):")
    left, right = _objects(ours, 8), _objects(theirs, 8)
    print(f"{'openmfa':<50}  FreeRADIUS")
    for a, b in zip(left + [""] * (8 - len(left)), right + [""] * (8 - len(right)), strict=True):
        print(f"{a:<50}  {b}")
    if annotate_lines:
        for name in ("openmfa", "freeradius"):
            print(f"\n{name}: the top functions (callgrind_annotate, self cost)")
            print(annotate(tmp / f"{name}.callgrind.2", annotate_lines))
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per server")
    ap.add_argument("--annotate", type=int, default=0, help="print the top N functions of each")
    ap.add_argument(
        "--profile", action="store_true", help="also profile the node's threads with cProfile"
    )
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument(
        "--rules",
        type=int,
        default=0,
        help="policy rules in place that every request is checked against (none matches)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openmfa-radius-callgrind-"))
    dd = DataDir(tmp / "node")
    keys, _ = populate(dd, args.requests)
    add_rules(dd, args.rules)
    store = Store.open(dd)
    RadiusClients(store).add("bench", "127.0.0.1/32", SECRET.decode())
    store.close()
    names = [f"user{i:05d}" for i in range(args.requests)]
    try:
        compare(dd, names, keys, tmp, args.annotate)
        if args.profile:
            prof = tmp / "node.pstats"
            profiled = measure_node(dd, names, keys, tmp, profile=prof)
            print(f"\ncProfile of the node ({profiled.summary}): {prof}")
            subprocess.run(
                [sys.executable, "-c", _PRINT_PROFILE, str(prof)], check=True, cwd=str(ROOT)
            )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


_PRINT_PROFILE = """
import pstats, sys
s = pstats.Stats(sys.argv[1])
s.sort_stats("tottime").print_stats(30)
"""

if __name__ == "__main__":
    main()
