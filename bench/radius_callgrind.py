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
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from verify import populate, wait_for_fresh_step

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


def annotate(out: Path, lines: int) -> str:
    """callgrind_annotate's top ``lines`` functions (inclusive of nothing: self cost)."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=99", str(out)], capture_output=True, text=True
    ).stdout
    rows = [ln for ln in text.splitlines() if re.match(r"^\s*[\d,]+ \(", ln)]
    return "\n".join(rows[:lines])


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
) -> tuple[int, int, str]:
    """(instructions, requests answered, radclient's summary) of ``len(names)`` valid codes,
    each user's second sign-in (the first one warmed the node up)."""
    out = tmp / "openmfa.callgrind"
    port = free_udp_port()
    file = tmp / "otp.txt"
    with node_under_callgrind(dd, out, port, profile) as proc:
        used = -1
        for phase in ("warm-up", "measured"):
            used = wait_for_fresh_step(used)
            codes = [(n, totp(k, used * 30)) for n, k in zip(names, keys, strict=True)]
            radclient_file(file, codes)
            if phase == "measured" and profile is None:
                _control(proc.pid, "-i", "on")
            _, summary = radclient_run(port, file, SECRET, 64, timeout=30)
            if phase == "measured" and profile is None:
                _control(proc.pid, "-i", "off")
    if profile is not None:
        return 0, _answered(summary), summary
    return totals(out), _answered(summary), summary


def measure_freeradius(names: list[str], tmp: Path) -> tuple[int, int, str]:
    out = tmp / "freeradius.callgrind"
    users = {n: f"pw-{i}" for i, n in enumerate(names)}
    file = tmp / "pap.txt"
    radclient_file(file, list(users.items()))
    with freeradius_under_callgrind(tmp / "freeradius", users, out) as (port, proc):
        radclient_run(port, file, SECRET, 64, timeout=30)  # warm-up
        _control(proc.pid, "-i", "on")
        _, summary = radclient_run(port, file, SECRET, 64, timeout=30)
        _control(proc.pid, "-i", "off")
    return totals(out), _answered(summary), summary


def compare(
    dd: DataDir, names: list[str], keys: list[bytes], tmp: Path, annotate_lines: int = 0
) -> float:
    """Print both servers' instructions per request and their ratio; returns the ratio."""
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"\ncallgrind: {len(names)} requests to each server after a warm-up, radclient -p 64")
    ours, answered, summary = measure_node(dd, names, keys, tmp)
    per_ours = ours / max(1, answered)
    print(
        f"callgrind: openmfa OTP-only, valid codes: {ours:,} instructions / {answered} = "
        f"{per_ours:,.0f} per request  [{summary}]"
    )
    theirs, fr_answered, fr_summary = measure_freeradius(names, tmp)
    per_theirs = theirs / max(1, fr_answered)
    print(
        f"callgrind: FreeRADIUS plain PAP: {theirs:,} instructions / {fr_answered} = "
        f"{per_theirs:,.0f} per request  [{fr_summary}]"
    )
    ratio = per_ours / per_theirs
    print(f"instructions per request, OpenMFA OTP / FreeRADIUS PAP: {ratio:.2f}x")
    if annotate_lines:
        for name in ("openmfa", "freeradius"):
            print(f"\n{name}: where the instructions go (callgrind_annotate, self cost)")
            print(annotate(tmp / f"{name}.callgrind", annotate_lines))
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per server")
    ap.add_argument("--annotate", type=int, default=0, help="print the top N functions of each")
    ap.add_argument(
        "--profile", action="store_true", help="also profile the node's threads with cProfile"
    )
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openmfa-radius-callgrind-"))
    dd = DataDir(tmp / "node")
    keys, _ = populate(dd, args.requests)
    store = Store.open(dd)
    RadiusClients(store).add("bench", "127.0.0.1/32", SECRET.decode())
    store.close()
    names = [f"user{i:05d}" for i in range(args.requests)]
    try:
        compare(dd, names, keys, tmp, args.annotate)
        if args.profile:
            prof = tmp / "node.pstats"
            _, answered, summary = measure_node(dd, names, keys, tmp, profile=prof)
            print(f"\ncProfile of the node ({answered} answered, {summary}): {prof}")
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
