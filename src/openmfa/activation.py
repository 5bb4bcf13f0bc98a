"""Socket activation: the sockets a service manager opened for the node (``sd_listen_fds(3)``).

Under systemd a ``.socket`` unit binds the RADIUS port (and, if wanted, the SDK's) and keeps it
open for as long as the unit is active. A restarted node (``systemctl restart``) finds the very
same socket, and what arrived while no process ran waits in its queue: nothing is refused or
lost (``docs/systemd/``). It is the service manager's version of ``radius.handoff``, and what it
passes goes the same way from there on (the node offers it to ``openmfa upgrade`` in turn).

The protocol (systemd's ``sd-daemon.h``):

- ``LISTEN_PID`` is the process the descriptors are for; in any other process (a child that
  inherited the variables) they mean nothing;
- ``LISTEN_FDS`` says how many, numbered from 3 (``SD_LISTEN_FDS_START``);
- ``LISTEN_FDNAMES``, optional, names them, separated by colons (``FileDescriptorName=``).

Invariants owned here:

- The variables are removed once read, and the descriptors made close-on-exec, so no process
  the node starts believes them.
- Every descriptor passed is used, or the node refuses to start with one line saying what to
  change in the unit: a socket named ``radius`` is the RADIUS socket and must be UDP, one named
  ``http`` the SDK's and must be a listening TCP socket; an unnamed one (or one named otherwise,
  as systemd names them after their unit by default) is told by its type. One of each at most.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from .errors import ConfigError

SD_LISTEN_FDS_START = 3
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
RADIUS, HTTP = "radius", "http"
FROM = "from the service manager"
"""How the log says where a socket came from."""
UNIT_HINT = (
    "the .socket unit should hold one ListenDatagram= for RADIUS (FileDescriptorName=radius) "
    "and at most one ListenStream= for the SDK (FileDescriptorName=http); see docs/systemd/"
)


@dataclass(frozen=True)
class Passed:
    """The sockets the service manager passed (None: none of that kind)."""

    radius: socket.socket | None = None
    http: socket.socket | None = None


def listen_fds(env: Mapping[str, str], pid: int) -> list[tuple[int, str]]:
    """The descriptors passed to process ``pid``, with their names ("" when unnamed). Pure: it
    only reads ``env``.

    >>> listen_fds({"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "radius:http"}, 42)
    [(3, 'radius'), (4, 'http')]
    >>> listen_fds({"LISTEN_PID": "41", "LISTEN_FDS": "1"}, 42)  # another process's
    []
    >>> listen_fds({"LISTEN_FDS": "1"}, 42)  # no LISTEN_PID: not for anyone
    []
    """
    if "LISTEN_PID" not in env:
        return []
    raw_pid, raw_fds = env["LISTEN_PID"].strip(), env.get("LISTEN_FDS", "0").strip()
    if not raw_pid.isascii() or not raw_pid.isdigit():
        raise ConfigError(f"LISTEN_PID={raw_pid!r} from the service manager is not a process id")
    if int(raw_pid) != pid:
        return []
    if not raw_fds.isascii() or not raw_fds.isdigit():
        raise ConfigError(
            f"LISTEN_FDS={raw_fds!r} from the service manager is not a number of sockets; "
            + UNIT_HINT
        )
    count = int(raw_fds)
    if count == 0:  # as sd_listen_fds_with_names: no names to check
        return []
    names = env["LISTEN_FDNAMES"].split(":") if "LISTEN_FDNAMES" in env else [""] * count
    if len(names) != count:
        raise ConfigError(
            f"LISTEN_FDNAMES names {len(names)} sockets, LISTEN_FDS says {count}: the service "
            "manager's variables do not agree"
        )
    return [(SD_LISTEN_FDS_START + i, name) for i, name in enumerate(names)]


def take(env: MutableMapping[str, str] | None = None, pid: int | None = None) -> Passed:
    """The RADIUS and SDK sockets passed to this process; the variables are removed from
    ``env`` (``os.environ``) either way. Raises ``ConfigError`` (one line: what to fix in the
    unit) when what was passed cannot be used."""
    env = os.environ if env is None else env
    try:
        fds = listen_fds(env, os.getpid() if pid is None else pid)
    finally:
        for name in VARIABLES:
            env.pop(name, None)
    return choose(fds)


def choose(fds: list[tuple[int, str]]) -> Passed:
    """Which of the descriptors ``fds`` (number, name) is RADIUS's and which the SDK's; each is
    made close-on-exec and owned by the socket returned."""
    found: dict[str, list[tuple[int, socket.socket]]] = {RADIUS: [], HTTP: []}
    opened: list[socket.socket] = []
    try:
        for fd, name in fds:
            opened.append(sock := _open(fd, name))
            found[_role(fd, name, sock)].append((fd, sock))
        for role, kind in ((RADIUS, "ListenDatagram="), (HTTP, "ListenStream=")):
            if len(found[role]) > 1:
                numbers = ", ".join(str(fd) for fd, _ in found[role])
                raise ConfigError(
                    f"the service manager passed {len(found[role])} {role} sockets (descriptors "
                    f"{numbers}); the node uses one: keep a single {kind} (a port alone, like "
                    "1812, takes IPv4 and IPv6)"
                )
    except ConfigError:
        for sock in opened:
            sock.close()
        raise
    radius = found[RADIUS][0][1] if found[RADIUS] else None
    if radius is not None:
        radius.setblocking(False)
    return Passed(radius=radius, http=found[HTTP][0][1] if found[HTTP] else None)


def address(sock: socket.socket) -> str:
    """Where ``sock`` is bound, as ``HOST:PORT`` (``[V6]:PORT``), as [radius] listen says it."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def restart_argv(argv: list[str], passed: Passed) -> list[str]:
    """``openmfa serve``'s arguments for a restart outside the service manager (``openmfa
    upgrade`` when no unit is known): the addresses the passed sockets are bound to, in place
    of any --listen/--radius-listen given, so the node comes back where it was.

    >>> restart_argv(["serve", "--radius-listen=127.0.0.1:1812"], Passed())
    ['serve', '--radius-listen=127.0.0.1:1812']
    """
    for option, sock in (("--listen", passed.http), ("--radius-listen", passed.radius)):
        if sock is None:
            continue
        kept: list[str] = []
        skip = False
        for arg in argv:
            if skip:
                skip = False
            elif arg == option:
                skip = True
            elif not arg.startswith(option + "="):
                kept.append(arg)
        argv = [*kept, option, address(sock)]
    return argv


def _open(fd: int, name: str) -> socket.socket:
    shown = f"descriptor {fd}" + (f" ({name})" if name else "")
    try:
        os.set_inheritable(fd, False)
        return socket.socket(fileno=fd)
    except OSError as exc:
        what = "is not open" if exc.errno == errno.EBADF else "is not a socket"
        raise ConfigError(f"{shown} from the service manager {what}; {UNIT_HINT}") from None


def _role(fd: int, name: str, sock: socket.socket) -> str:
    """RADIUS or HTTP, by ``name`` when it is one of those, else by the socket's type."""
    inet = sock.family in (socket.AF_INET, socket.AF_INET6)
    udp = inet and sock.type == socket.SOCK_DGRAM
    tcp = inet and sock.type == socket.SOCK_STREAM
    who = f"the socket named {name} (descriptor {fd})" if name else f"descriptor {fd}"
    if name == RADIUS or (name != HTTP and udp):
        if not udp:
            raise ConfigError(
                f"{who} is {_kind(sock)}, but RADIUS is UDP: use ListenDatagram= "
                "(like ListenDatagram=1812) in the .socket unit"
            )
        return RADIUS
    if name == HTTP or tcp:
        if not tcp or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ConfigError(
                f"{who} is {_kind(sock)}, but the SDK needs a listening TCP socket: use "
                "ListenStream= (like ListenStream=8480) in the .socket unit"
            )
        return HTTP
    raise ConfigError(f"{who} from the service manager is {_kind(sock)}; {UNIT_HINT}")


def _kind(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return "a unix socket"
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return "not an IP socket"
    if sock.type == socket.SOCK_DGRAM:
        return "a UDP socket"
    if sock.type == socket.SOCK_STREAM:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        return "a TCP socket" if listening else "a TCP socket that does not listen"
    return "neither UDP nor TCP"
