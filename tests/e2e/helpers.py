"""Real processes for end-to-end tests: the installed ``openmfa`` command and servers."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

OPENMFA = str(Path(sys.executable).with_name("openmfa"))


def cli(data_dir: Path, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENMFA_DATA_DIR": str(data_dir)}
    proc = subprocess.run([OPENMFA, *args], capture_output=True, text=True, env=env, timeout=60)
    if expect is not None:
        assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def init(data_dir: Path) -> str:
    """``openmfa init``; returns the admin API key it printed."""
    out = cli(data_dir, "init").stdout
    match = re.search(r"(omfa_\S+)", out)
    assert match, out
    return match.group(1)


def secret_of(output: str) -> str:
    match = re.search(r"^secret:\s+(\S+)$", output, re.M)
    assert match, output
    return match.group(1)


def oathtool(*args: str) -> str:
    return subprocess.run(
        ["oathtool", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextmanager
def server(
    data_dir: Path,
    *extra: str,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = False,
    radius: str = "off",
    port: int | None = None,
) -> Iterator[Server]:
    """Run ``openmfa serve`` on ``port`` or a free one (RADIUS off unless ``radius`` is
    HOST:PORT)."""
    port = port or free_port()
    log = data_dir / f"serve-{port}.log"
    env = {**os.environ, "OPENMFA_DATA_DIR": str(data_dir)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [OPENMFA, "serve", "--listen", f"127.0.0.1:{port}", "--radius-listen", radius, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    srv = Server(proc, f"{scheme}://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(srv.url + "/healthz", verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start: " + log.read_text())
            time.sleep(0.1)
        yield srv
    finally:
        srv.stop()
