"""How a node is restarted: as it ran, where it ran, through its service manager if it has one."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmfa.node.control import (
    SERVE_RECORD,
    Invocation,
    NodeControl,
    NodeControlError,
    service_unit,
)

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_the_record_is_private_and_round_trips(tmp_path: Path) -> None:
    inv = Invocation(42, ["serve", "--listen", "127.0.0.1:1"], "/", {"A": "b"}, "http://x:1", "")
    inv.save(tmp_path / SERVE_RECORD)
    assert stat.S_IMODE((tmp_path / SERVE_RECORD).stat().st_mode) == 0o600  # holds the env
    assert Invocation.load(tmp_path / SERVE_RECORD) == inv
    (tmp_path / SERVE_RECORD).write_text("{not json")
    assert Invocation.load(tmp_path / SERVE_RECORD) is None


def test_a_node_that_came_back_elsewhere_is_refused(tmp_path: Path) -> None:
    control = NodeControl(tmp_path)
    Invocation(7, ["serve"], "/", {}, "http://127.0.0.1:8480", "127.0.0.1:1812").save(
        tmp_path / SERVE_RECORD
    )
    control._same_place(7, "http://127.0.0.1:8480", "127.0.0.1:1812")  # where it was: fine
    control._same_place(8, "http://127.0.0.1:9999", "")  # another pid's record: not yet known
    with pytest.raises(NodeControlError) as err:
        control._same_place(7, "http://127.0.0.1:18500", "")
    message = err.value.message
    assert (
        "the Web Service SDK on http://127.0.0.1:8480 instead of http://127.0.0.1:18500" in message
    )
    assert "RADIUS on 127.0.0.1:1812 instead of nothing (off)" in message


def test_the_service_unit_comes_from_the_environment() -> None:
    assert service_unit({"OPENMFA_SERVICE_UNIT": "openmfa-server.service"}) == (
        "openmfa-server.service"
    )
    assert service_unit({}) == ""


def test_a_node_of_a_previous_release_is_read_from_proc(tmp_path: Path) -> None:
    """A running node that wrote no record (an older release): its options and environment
    are read from /proc, and where it listens follows from them and server.toml."""
    (tmp_path / "server.toml").write_text('[server]\nlisten = "127.0.0.1:8480"\n')
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "openmfa.lock"), "serve", "--data-dir",
         str(tmp_path), "--listen", "127.0.0.1:18501"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "SITE_MARK": "1"},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        control = NodeControl(tmp_path)
        assert control.pid() == holder.pid
        how = control.invocation()
        assert how is not None and how.source == "proc"
        assert how.argv == ["serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:18501"]
        assert how.env["SITE_MARK"] == "1"
        assert how.url == "http://127.0.0.1:18501"
        assert how.radius == "127.0.0.1:1812"  # the shipped default, from server.toml's defaults
        assert control.stop(timeout=30) is True  # SIGTERM, and the record is kept for start
        kept = Invocation.load(tmp_path / SERVE_RECORD)
        assert kept is not None and kept.argv == how.argv
        assert control.url() == "http://127.0.0.1:18501"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 10
    while NodeControl(tmp_path).pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert NodeControl(tmp_path).pid() is None


RESTARTED_BY_ITS_SOCKET = r"""#!PYTHON
# systemctl as it behaves for a socket-activated unit: `stop` stops the node, and a request
# already waiting in the .socket unit's queue starts the unit again at once.
import os, signal, subprocess, sys, time
from pathlib import Path

verb, unit, here = sys.argv[1], sys.argv[2], Path(os.environ["FAKE_UNIT_DIR"])
with open(here / "systemctl.log", "a") as log:
    log.write(f"{verb} {unit}\n")
if verb == "stop":
    pid = int((here / "openmfa.lock").read_text())
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    again = subprocess.Popen(
        [sys.executable, "-c", os.environ["FAKE_HOLDER"], str(here / "openmfa.lock")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    assert again.stdout.readline() == "locked\n"
    (here / "again.pid").write_text(str(again.pid))
"""


def test_a_unit_its_socket_starts_again_is_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under socket activation, a request that waits in the socket starts the unit again right
    after ``systemctl stop``: the process stopped is gone, and that is what ``stop`` waits for
    (``start`` then restarts the unit, so the release `current` names runs)."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(RESTARTED_BY_ITS_SOCKET.replace("PYTHON", sys.executable, 1))
    systemctl.chmod(0o755)
    monkeypatch.setenv("OPENMFA_SYSTEMCTL", str(systemctl))
    monkeypatch.setenv("FAKE_UNIT_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_HOLDER", HOLDER)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "openmfa.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    said: list[str] = []
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        Invocation(
            holder.pid, ["serve"], "/", {}, "http://127.0.0.1:1", "", "openmfa.service"
        ).save(tmp_path / SERVE_RECORD)
        control = NodeControl(tmp_path, said.append)
        assert control.stop(timeout=20) is True  # not waiting for the held lock to go
        holder.wait(timeout=10)
        again = int((tmp_path / "again.pid").read_text())
        assert control.pid() == again != holder.pid
        assert (
            said[-1] == f"    the node was started again by a request to its socket (pid {again})"
        )
        assert (tmp_path / "systemctl.log").read_text() == "stop openmfa.service\n"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        if (tmp_path / "again.pid").exists():
            os.kill(int((tmp_path / "again.pid").read_text()), signal.SIGKILL)
