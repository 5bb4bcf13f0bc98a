"""Base against head: run one benchmark alternately on two trees and compare its headline figure.

    python bench/ab.py --base /tmp/base --runs 3 --figure radius -- --rounds 1

``--base`` is a worktree of the commit to compare with (``git worktree add /tmp/base COMMIT``);
each base run uses that tree's benchmark script and its ``src`` (``PYTHONPATH``), each head run
this tree's. Runs alternate (base, head, base, head, …) so that a machine that gets busier or
quieter in between weighs on both alike. The figure is read from the benchmark's own output:

- ``verify``: server CPU µs per request, accepted codes at concurrency 16 (``bench/verify.py``);
- ``radius``: the median of the rounds' server CPU µs per request (``bench/radius.py``);
- ``push``: the node's RADIUS CPU µs per request with every device connected (``bench/push.py``);
- ``app``: the web app's push-to-visible p99 in ms (``bench/app.py``; a base tree needs it too).

Prints each run's figure, the medians, and head/base (CPU per request, latency: lower is better).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

FIGURES: dict[str, tuple[str, re.Pattern[str]]] = {
    "verify": ("bench/verify.py", re.compile(r"^accepted\s+16\s+.*\s(\d+)\s*$", re.M)),
    "radius": ("bench/radius.py", re.compile(r"rounds: openmfa (\d+) µs/req")),
    "push": ("bench/push.py", re.compile(r"µs/req without devices .*?, (\d+) µs/req with")),
    "app": ("bench/app.py", re.compile(r"push to visible p99 (\d+) ms")),
}
UNITS = {"app": "ms"}
"""A figure's unit, where it is not the server's CPU µs per request."""


def run(tree: Path, script: str, pattern: re.Pattern[str], extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    where = subprocess.run(
        [sys.executable, "-c", "import openmfa; print(openmfa.__file__)"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"{tree}: python imports openmfa from {where}, not from this tree")
    out = subprocess.run(
        [sys.executable, script, *extra],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    found = pattern.findall(out.stdout)
    if out.returncode != 0 or not found:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
        raise SystemExit(f"{tree}: {script} failed (exit {out.returncode}) or printed no figure")
    return float(found[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="worktree of the base commit")
    ap.add_argument("--figure", choices=sorted(FIGURES), required=True)
    ap.add_argument("--runs", type=int, default=3, help="runs of each (alternating)")
    ap.add_argument("extra", nargs="*", help="after --: options for the benchmark")
    args = ap.parse_args()
    script, pattern = FIGURES[args.figure]
    unit = UNITS.get(args.figure, "µs/req")
    base, head = args.base.resolve(), HERE
    figures: dict[str, list[float]] = {"base": [], "head": []}
    for i in range(1, args.runs + 1):
        for label, tree in (("base", base), ("head", head)):
            x = run(tree, script, pattern, args.extra)
            figures[label].append(x)
            print(f"run {i} {label}: {x:.0f} {unit}", flush=True)
    b, h = statistics.median(figures["base"]), statistics.median(figures["head"])
    print(
        f"{args.figure}: median of {args.runs} base {b:.0f} {unit}, head {h:.0f} {unit}, "
        f"head/base {h / b:.3f} ({'within' if h <= b * 1.05 else 'NOT within'} 5%)"
    )


if __name__ == "__main__":
    main()
