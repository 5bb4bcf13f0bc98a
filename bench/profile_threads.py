"""Run ``openmfa ARGS...`` with cProfile on every thread (cProfile alone sees only the main
thread; the RADIUS hot path runs on the commit thread); write the combined stats to PATH at exit.

    python bench/profile_threads.py PATH serve --data-dir ...
"""

from __future__ import annotations

import atexit
import contextlib
import cProfile
import pstats
import sys
import threading

_done: list[cProfile.Profile] = []
_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    prof = cProfile.Profile()
    prof.enable()
    try:
        _run(self)
    finally:
        prof.disable()
        _done.append(prof)


def _dump(path: str, main: cProfile.Profile) -> None:
    main.disable()
    stats = pstats.Stats(main)
    for prof in _done:
        stats.add(prof)
    stats.dump_stats(path)


def main() -> None:
    path = sys.argv[1]
    sys.argv = ["openmfa", *sys.argv[2:]]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    from openmfa.cli import main as openmfa

    prof = cProfile.Profile()
    atexit.register(_dump, path, prof)
    prof.enable()
    with contextlib.suppress(SystemExit):
        openmfa()


if __name__ == "__main__":
    main()
