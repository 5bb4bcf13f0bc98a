"""Real processes for end-to-end tests: the installed ``openmfa`` command and servers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OPENMFA = str(Path(sys.executable).with_name("openmfa"))
AUTHENTICATOR = str(Path(sys.executable).with_name("openmfa-authenticator"))
VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
"""Chromium's virtual authenticator (DevTools: ``WebAuthn.addVirtualAuthenticator``'s options):
a platform passkey whose user verification succeeds."""


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


def person(data_dir: Path, name: str, password: str, seed: str = "") -> None:
    """A user with a password (set through stdin, as a person would) and, with ``seed``, an
    authenticator app (TOTP)."""
    cli(data_dir, "user", "add", name)
    env = {**os.environ, "OPENMFA_DATA_DIR": str(data_dir)}
    subprocess.run(
        [OPENMFA, "user", "set-password", name, "--password-stdin"],
        input=password + "\n", text=True, check=True, capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    if seed:
        cli(data_dir, "method", "add", name, "totp", "--secret", seed, "--no-qr")


def secret_of(output: str) -> str:
    match = re.search(r"^secret:\s+(\S+)$", output, re.M)
    assert match, output
    return match.group(1)


def oathtool(*args: str) -> str:
    return subprocess.run(
        ["oathtool", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


SHARED_ENV = "OPENMFA_TEST_SHARED"
"""A directory every pytest worker of one run shares (set by tests/conftest.py)."""


def built_once(key: str, out: Path, build: Callable[[Path], Path]) -> Path:
    """``build(directory)``'s result, made once per test run and then reused, even by the other
    pytest-xdist workers (they wait on a lock while one builds): wheels, bundles and the
    wheelhouse each cost up to a minute. Outside pytest (the benchmarks) they are kept in
    ``out``."""
    import fcntl

    shared = os.environ.get(SHARED_ENV)
    where = (Path(shared) if shared else out) / "built" / re.sub(r"[^A-Za-z0-9.-]", "_", key)
    where.mkdir(parents=True, exist_ok=True)
    with (where / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = where / ".done"
        if done.exists():
            return Path(done.read_text())
        result = build(where)
        done.write_text(str(result))
        return result


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


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Until ``predicate()`` holds (bounded: fails saying ``what`` was awaited)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return bool(httpx.get(url + "/healthz", timeout=2).json()["status"] == "ok")
    return False


def start_service(argv: list[str], ready_url: str, log: Path) -> subprocess.Popen[str]:
    """Start ``openmfa ARGV...`` (a service beside the nodes); back once ``ready_url`` answers
    200, or fail with its log."""
    with log.open("w") as out:
        proc = subprocess.Popen([OPENMFA, *argv], stdout=out, stderr=subprocess.STDOUT, text=True)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(ready_url, timeout=1).status_code == 200
        return False

    try:
        wait_for(up, f"{argv[0]} did not start: see {log}")
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process we started, and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Phone:
    """One activated device: the reference authenticator with its own state file."""

    state: Path

    def run(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OPENMFA_AUTHENTICATOR_STATE": str(self.state)}
        proc = subprocess.run(
            [AUTHENTICATOR, *args], capture_output=True, text=True, env=env, timeout=90
        )
        if expect is not None:
            assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def pending(self, wait: int = 0) -> list[dict[str, object]]:
        found: list[dict[str, object]] = json.loads(
            self.run("pending", "--json", "--wait", str(wait)).stdout
        )
        return found

    @property
    def device_id(self) -> str:
        return str(json.loads(self.state.read_text())["device_id"])

    def watch(self) -> Watching:
        return Watching(self)


class Watching:
    """The reference authenticator kept running (``watch``), as an app is: one connection and
    one long-poll always open. Each request is timed when the phone saw it."""

    def __init__(self, phone: Phone) -> None:
        env = {**os.environ, "OPENMFA_AUTHENTICATOR_STATE": str(phone.state)}
        self._log = phone.state.with_suffix(".watch.log").open("w")
        self.proc = subprocess.Popen(
            [AUTHENTICATOR, "watch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._changed = threading.Condition()
        self.requests: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._changed:
                if "request" in event:
                    self.requests[event["request"]["id"]] = event["request"]
                elif "answered" in event:
                    self.answers[event["answered"]] = event
                else:
                    self.notes.append(event)
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def seen(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """The request as the phone showed it, once it has (None: not within ``timeout``)."""
        with self._changed:
            self._changed.wait_for(lambda: request_id in self.requests or self.ended, timeout)
            return self.requests.pop(request_id, None)

    def answer(self, request_id: str, word: str, number: str, timeout: float) -> dict[str, Any]:
        """Tap ``word`` (approve, deny, fraud) on a request: {"status": …} or {"error": …}."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word} {request_id} {number}\n")
        self.proc.stdin.flush()
        with self._changed:
            self._changed.wait_for(lambda: request_id in self.answers or self.ended, timeout)
            return self.answers.pop(request_id, {"error": f"no answer within {timeout} s"})

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the end of its input ends it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
