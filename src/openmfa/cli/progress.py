"""Progress of a long farm command on a terminal: every step's line as it comes, and under them
one status line, redrawn every second — the host being moved, how many hosts are done, the
step it is at and how long it has taken. Not on a terminal (a log, a pipe, CI): the step lines
alone, one per step, nothing redrawn."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import IO

HOST = re.compile(r"^\[([^\]]+)\] (.*)$")
"""A step line names its host first: ``[web-1] upgrading to 1.2.0 ...``."""


class Progress:
    def __init__(
        self,
        out: IO[str],
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 1.0,
    ) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.clock = clock
        self.tick = tick
        self.started = clock()
        self.hosts: list[str] = []
        """Every host a step line named, in the order they came."""
        self.step = ""
        self._lock = threading.Lock()
        self._shown = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        """One step's line (the commands' ``say``)."""
        with self._lock:
            found = HOST.match(line)
            if found:
                if found.group(1) not in self.hosts:
                    self.hosts.append(found.group(1))
                self.step = found.group(2)
            self._clear()
            self.out.write(line + "\n")
            self._draw()
            self.out.flush()

    def status(self) -> str:
        spent = int(self.clock() - self.started)
        where = f"{self.hosts[-1]}: {self.step}" if self.hosts else "starting"
        done = max(0, len(self.hosts) - 1)
        text = f"  >> {done} hosts done, now {where}  ({spent // 60}:{spent % 60:02d})"
        return text[:119]

    def _clear(self) -> None:
        if self.tty and self._shown:
            self.out.write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _draw(self) -> None:
        if self.tty:
            text = self.status()
            self.out.write(text)
            self._shown = len(text)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                self._clear()
                self._draw()
                self.out.flush()

    def __enter__(self) -> Progress:
        if self.tty:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._clear()
            self.out.flush()
