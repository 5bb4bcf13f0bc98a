"""Stopping and starting the node that serves a data directory, as an administrator would —
and exactly as it ran before.

``openmfa serve`` records how it was started in ``openmfa.serve.json`` beside its lock file
(``openmfa.lock``, which holds its pid): its arguments, working directory and environment, the
addresses it actually listens on, and the service-manager unit it runs under, if any. A node
restarted here (by ``upgrade``, ``rollback``, ``backup restore``) runs with the same arguments and
environment — the new release's ``openmfa`` in place of the old one — or, under a service
manager, is stopped and started through it (``systemctl stop|restart UNIT``: ``restart``, since
a request to a socket-activated unit may have started it again meanwhile), so it never ends up
outside its supervisor or fighting it for the lock. A node started by a release that kept no
such record is read from ``/proc/PID`` (command line, environment, working directory) before it
is stopped.

A restarted node must come back where it was: it is waited for until ``/readyz`` answers at the
address it listened on before, and a node that comes back on another SDK or RADIUS address is a
failure (the upgrade that restarted it rolls back).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..config import load as load_config
from ..config import parse_listen
from ..errors import NodeControlError
from ..store.serve_record import SERVE_RECORD as SERVE_RECORD
from ..store.serve_record import Invocation as Invocation

FD_ENV = "OPENMFA_RADIUS_FD"
"""The descriptor number of an inherited RADIUS socket (``radius.handoff``; set by whoever
starts the node: a restart in place hands the socket over, so no request is lost)."""
SERVICE_UNIT_ENV = "OPENMFA_SERVICE_UNIT"
"""Set by the systemd unit ``openmfa install --systemd-dir`` writes: the unit's name."""
SYSTEMCTL_ENV = "OPENMFA_SYSTEMCTL"
"""The service manager's command (default ``systemctl``)."""


GATE_ENV = "OPENMFA_START_GATE"
"""A pipe's read end: a node started ahead waits on it (``wait_at_gate``)."""


@dataclass
class Ahead:
    """A node process started ahead of its predecessor's stop, waiting at its gate."""

    proc: subprocess.Popen[bytes]
    gate: int
    """The gate's write end: "go" opens it; closing it unsaid sends the process away."""

    def go(self) -> subprocess.Popen[bytes] | None:
        """Open the gate; None when the process is gone already (then start another)."""
        try:
            os.write(self.gate, b"go")
        except OSError:  # nobody reads: it has exited
            self.proc.wait()
            return None
        finally:
            os.close(self.gate)
        return self.proc

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.gate)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def wait_at_gate() -> None:
    """In a node started ahead (``NodeControl.start_ahead``): wait, everything imported, until
    the restart opens the gate (the old node has stopped, the release is switched); leave
    quietly when it is closed unopened (the restart failed or was given up)."""
    raw = os.environ.pop(GATE_ENV, "")
    if not raw.isdigit():
        return
    with os.fdopen(int(raw), "rb") as gate:
        said = gate.read(2)
    if said != b"go":
        raise SystemExit(0)


def base_url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard listen is reached on loopback
        shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]"  # noqa: S104
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def service_unit(env: dict[str, str], pid: int | None = None) -> str:
    """The service-manager unit a process with environment ``env`` runs under, or ""."""
    if env.get(SERVICE_UNIT_ENV):
        return env[SERVICE_UNIT_ENV]
    if not env.get("INVOCATION_ID"):  # systemd sets it for every unit it starts
        return ""
    try:
        cgroup = Path(f"/proc/{pid or 'self'}/cgroup").read_text()
    except OSError:
        return ""
    for line in cgroup.splitlines():
        leaf = line.rsplit("/", 1)[-1]
        if leaf.endswith(".service"):
            return leaf
    return ""


def record_serve(
    data_dir: Path, url: str, radius: str, name: str = SERVE_RECORD, argv: list[str] | None = None
) -> None:
    """Called by ``openmfa serve`` (and ``mobile serve``, with its own ``name``) once it
    listens: how this process runs. ``argv``: how to run it again, when not as it was started
    (a socket-activated node names the addresses of the sockets it was given)."""
    import sys

    env = dict(os.environ)
    Invocation(
        pid=os.getpid(),
        argv=sys.argv[1:] if argv is None else argv,
        cwd=os.getcwd(),
        env=env,
        url=url,
        radius=radius,
        unit=service_unit(env),
    ).save(data_dir / name)


def _from_proc(pid: int, url: str, radius: str, head: str = "serve") -> Invocation | None:
    """How a running node that kept no record was started (a previous release's); ``head``
    is the first word of its arguments (``serve``, or ``mobile`` for ``mobile serve``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        raw_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    args = [a.decode(errors="surrogateescape") for a in argv if a]
    # `python .../bin/openmfa serve ...` (a console script) or `.../bin/openmfa serve ...`
    while args and args[0] != head:
        args.pop(0)
    if not args:
        return None
    env = dict(
        item.decode(errors="surrogateescape").split("=", 1) for item in raw_env if b"=" in item
    )
    return Invocation(pid, args, cwd, env, url, radius, service_unit(env, pid), "proc")


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class NodeControl:
    """The node of a data directory. Subclasses name another service of a host the same way:
    its lock file (holding its pid), the record of how it runs, its log and readiness path."""

    what = "the node"
    serves = "the Web Service SDK"
    lock_name = "openmfa.lock"
    record_name = SERVE_RECORD
    log_name = "serve.log"
    ready_path = "/readyz"

    def __init__(self, data_dir: Path, say: Callable[[str], None] = lambda _: None) -> None:
        self.data_dir = data_dir
        self.say = say

    def default_argv(self) -> list[str]:
        """How it is started when no record says otherwise."""
        return ["serve", "--data-dir", str(self.data_dir)]

    @property
    def record_path(self) -> Path:
        return self.data_dir / self.record_name

    def pid(self) -> int | None:
        """The pid of the process holding this service's lock, or None."""
        lock = self.data_dir / self.lock_name
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

    def invocation(self) -> Invocation | None:
        """How the node runs (or, when stopped, how it ran last), or None if unknown."""
        pid = self.pid()
        saved = Invocation.load(self.record_path)
        if pid is None or (saved is not None and saved.pid == pid):
            return saved
        args = _from_proc(pid, "", "", self.default_argv()[0])
        if args is None:
            return None
        # A previous release's node: where it listens follows from its options and config.
        args.url = self._config_url(_option(args.argv, "--listen"))
        radius = _option(args.argv, "--radius-listen")
        args.radius = (
            self._config_radius() if radius is None else ("" if radius == "off" else radius)
        )
        return args

    def stop(self, timeout: float = 60) -> bool:
        """Stop the node gracefully and wait until it let go of the data directory; False if
        none ran. How it ran is kept (``openmfa.serve.json``) for ``start``."""
        pid = self.pid()
        if pid is None:
            return False
        how = self.invocation()
        if how is not None and how.source == "proc":
            how.save(self.record_path)  # a crash before `start` must not lose it
        if how is not None and how.unit:
            self.say(f"    stopping {self.what} (pid {pid}) through its service manager")
            self._systemctl("stop", how.unit)
        else:
            self.say(f"    stopping {self.what} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (now := self.pid()) is not None:
            if now != pid and how is not None and how.unit:
                # Its .socket unit started it again on a request (socket activation): the
                # one stopped is gone, and `start` restarts the unit with the release it names.
                self.say(
                    f"    {self.what} was started again by a request to its socket (pid {now})"
                )
                break
            if time.monotonic() > deadline:
                raise NodeControlError(
                    f"{self.what} (pid {pid}) did not stop within {timeout:.0f} s"
                )
            time.sleep(0.1)
        return True

    def start_ahead(self, openmfa: Path, radius: socket.socket | None = None) -> Ahead | None:
        """Start the next process before this one stops, so its start-up (Python's imports:
        most of it) overlaps the old one's shutdown: it waits at a gate (``wait_at_gate``)
        until ``start(..., ahead=it)`` opens it, and goes away by itself if it is never
        opened. None under a service manager (it starts the unit itself)."""
        how = self.invocation()  # how the running node was started (its record, or /proc)
        if how is not None and how.unit:
            return None
        if how is not None and how.source == "proc":
            how.save(self.record_path)  # as `stop` does: `start` reads it
        r, w = os.pipe()
        try:
            proc = self._spawn(openmfa, how, radius, gate=r)
        finally:
            os.close(r)
        self.say(f"    started {self.what} ahead (pid {proc.pid}): it waits until this one stops")
        return Ahead(proc, w)

    def start(
        self,
        openmfa: Path,
        timeout: float = 60,
        radius: socket.socket | None = None,
        ahead: Ahead | None = None,
    ) -> int:
        """Start the node again as it ran before (``openmfa`` being the release to run) and
        wait until it is ready where it was; returns its pid. ``radius``: the RADIUS socket
        held since the node stopped (``radius.handoff.take``), for the new process to go on
        with, so the requests that arrived in between are answered. ``ahead``: the process
        ``start_ahead`` started, told to go on now."""
        how = Invocation.load(self.record_path)
        before = self.url()
        radius_before = how.radius if how is not None else None
        proc: subprocess.Popen[bytes] | None = None
        if ahead is not None and (proc := ahead.go()) is not None:
            self.say(f"    {self.what} started ahead (pid {proc.pid}) goes on")
        elif how is not None and how.unit:
            # restart, not start: under socket activation a request may have started the unit
            # again since its stop, with the release `current` named then (docs/systemd/).
            self._systemctl("restart", how.unit)
            self.say(f"    started {self.what} through its service manager ({how.unit})")
        else:
            proc = self._spawn(openmfa, how, radius)
            held = " with the RADIUS socket held meanwhile" if radius is not None else ""
            self.say(f"    started {self.what} (pid {proc.pid}){held}")
        deadline = time.monotonic() + timeout
        while True:
            if proc is not None and proc.poll() is not None:
                raise NodeControlError(
                    f"{self.what} exited with {proc.returncode}; "
                    f"see {self.data_dir / self.log_name}"
                )
            pid = self.pid()
            if pid is not None:
                self._same_place(pid, before, radius_before)  # fails fast when it moved
                if _ready(before + self.ready_path):
                    # A node writes its record before it answers: read it again. (A release
                    # that keeps no record answers where it was: that is all we know.)
                    self._same_place(pid, before, radius_before)
                    return pid
            if time.monotonic() > deadline:
                raise NodeControlError(
                    f"{self.what} did not become ready at {before} within {timeout:.0f} s; "
                    f"see {self.data_dir / self.log_name}"
                )
            time.sleep(0.2)

    def _spawn(
        self,
        openmfa: Path,
        how: Invocation | None,
        radius: socket.socket | None,
        gate: int | None = None,
    ) -> subprocess.Popen[bytes]:
        argv = how.argv if how is not None else self.default_argv()
        env = dict(how.env if how is not None else os.environ)
        for name in (FD_ENV, GATE_ENV):
            env.pop(name, None)
        fds = []
        if radius is not None:
            env[FD_ENV] = str(radius.fileno())
            fds.append(radius.fileno())
        if gate is not None:
            env[GATE_ENV] = str(gate)
            fds.append(gate)
        with (self.data_dir / self.log_name).open("a") as log:
            return subprocess.Popen(
                [str(openmfa), *argv],
                cwd=how.cwd if how is not None and Path(how.cwd).is_dir() else None,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=tuple(fds),
            )

    def url(self) -> str:
        """The base URL where it listens (or listened last)."""
        how = Invocation.load(self.record_path)
        if how is not None and how.url:
            return how.url
        return self._config_url(None)

    # -- helpers ------------------------------------------------------------------------------

    def _same_place(self, pid: int, url: str, radius: str | None) -> None:
        now = Invocation.load(self.record_path)
        if now is None or now.pid != pid:
            return  # not written yet, or a release that keeps no record
        moved = []
        if now.url != url:
            moved.append(f"{self.serves} on {now.url} instead of {url}")
        if radius is not None and now.radius != radius:
            moved.append(
                f"RADIUS on {now.radius or 'nothing (off)'} instead of {radius or 'nothing (off)'}"
            )
        if moved:
            raise NodeControlError(
                f"{self.what} came back elsewhere: " + "; ".join(moved) + ". Clients would lose it"
            )

    def _config_url(self, listen: str | None) -> str:
        config = load_config(self.data_dir / "server.toml")
        host, port = parse_listen(listen or config.get("server", "listen"))
        return base_url(host, port, bool(config.get("server", "tls_cert")))

    def _config_radius(self) -> str:
        return str(load_config(self.data_dir / "server.toml").get("radius", "listen"))

    def _systemctl(self, verb: str, unit: str) -> None:
        command = [os.environ.get(SYSTEMCTL_ENV) or "systemctl", verb, unit]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeControlError(f"`{' '.join(command)}` failed: {exc}") from None
        if out.returncode != 0:
            raise NodeControlError(
                f"`{' '.join(command)}` failed ({out.returncode}): "
                f"{(out.stderr or out.stdout).strip()}"
            )


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2, verify=False).status_code == 200  # noqa: S501 - our own node
    return False
