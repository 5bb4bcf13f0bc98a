"""Stopping and starting the node that serves a data directory, as an administrator would:
the pid comes from ``openmfa.lock`` (held by ``openmfa serve``), SIGTERM stops it gracefully,
and a new ``openmfa serve`` is started detached and waited for until ``/readyz`` answers."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ..config import load as load_config
from ..config import parse_listen
from ..errors import StoreError


class NodeControlError(StoreError):
    code = "node_control"


class NodeControl:
    def __init__(self, data_dir: Path, say: Callable[[str], None] = lambda _: None) -> None:
        self.data_dir = data_dir
        self.say = say

    def pid(self) -> int | None:
        """The pid of the ``openmfa serve`` holding this data directory, or None."""
        lock = self.data_dir / "openmfa.lock"
        if not lock.exists():
            return None
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = lock.read_text().strip()
            return int(text) if text.isdigit() else None
        finally:
            os.close(fd)
        return None

    def stop(self, timeout: float = 60) -> bool:
        """SIGTERM the node and wait until it let go of the data directory; False if none ran."""
        pid = self.pid()
        if pid is None:
            return False
        self.say(f"    stopping the node (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                raise NodeControlError(f"the node (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.1)
        return True

    def start(self, openmfa: Path, timeout: float = 60) -> int:
        """Start ``openmfa serve`` detached (log: serve.log) and wait until it is ready."""
        log = (self.data_dir / "serve.log").open("a")
        proc = subprocess.Popen(
            [str(openmfa), "serve", "--data-dir", str(self.data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.say(f"    started the node (pid {proc.pid})")
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise NodeControlError(
                    f"the node exited with {proc.returncode}; see {self.data_dir / 'serve.log'}"
                )
            try:
                if httpx.get(self.url() + "/readyz", timeout=1, verify=False).status_code == 200:  # noqa: S501 - our own node
                    return proc.pid
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise NodeControlError(f"the node did not become ready within {timeout:.0f} s")
            time.sleep(0.2)

    def url(self) -> str:
        config = load_config(self.data_dir / "server.toml")
        host, port = parse_listen(config.get("server", "listen"))
        scheme = "https" if config.get("server", "tls_cert") else "http"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}"
