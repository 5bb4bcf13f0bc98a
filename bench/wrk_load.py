"""wrk, the C load generator, as the benchmarks run it (a Python client on this 2-core machine
would take the CPU the services under test need)."""

from __future__ import annotations

import re
import subprocess

CONCURRENCY = 16


def wrk(
    url: str, seconds: int, *extra: str, concurrency: int = CONCURRENCY
) -> tuple[float, float, float]:
    """p50/p99 latency (ms) and requests/s of ``url`` at ``concurrency`` (``extra``: wrk's own
    options, like ``-H "Cookie: …"`` or ``-s script.lua``); every answer must be 2xx or 3xx."""
    threads = min(2, concurrency)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"wrk saw failed answers:\n{out}")

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate, out
    return ms("50%"), ms("99%"), float(rate.group(1))
