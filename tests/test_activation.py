"""Socket activation (``openmfa.activation``): what a service manager passes is read as
``sd_listen_fds(3)`` reads it, and anything the node cannot use is refused in one line that says
what to fix in the unit. Real sockets on loopback; the descriptor numbers are this process's."""

from __future__ import annotations

import doctest
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from openmfa import activation
from openmfa.activation import Passed, choose, listen_fds, restart_argv, take
from openmfa.errors import ConfigError


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(activation)
    assert result.attempted >= 4 and result.failed == 0


def test_descriptors_start_at_three_and_take_their_names() -> None:
    env = {"LISTEN_PID": "7", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "radius:http:extra"}
    assert listen_fds(env, 7) == [(3, "radius"), (4, "http"), (5, "extra")]
    assert listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "2"}, 7) == [(3, ""), (4, "")]
    assert listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "0"}, 7) == []
    assert listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "0", "LISTEN_FDNAMES": ""}, 7) == []


def test_variables_meant_for_another_process_are_ignored_and_removed() -> None:
    """A child of an activated process inherits LISTEN_*: its LISTEN_PID is not this pid."""
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "radius:http", "PATH": "/x"}
    assert take(env, pid=12345) == Passed()
    assert env == {"PATH": "/x"}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"LISTEN_PID": "7", "LISTEN_FDS": "two"}, "LISTEN_FDS='two' from the service manager is"),
        ({"LISTEN_PID": "7", "LISTEN_FDS": "-1"}, "LISTEN_FDS='-1'"),
        ({"LISTEN_PID": "seven", "LISTEN_FDS": "1"}, "LISTEN_PID='seven' from the service"),
        (
            {"LISTEN_PID": "7", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "radius"},
            "LISTEN_FDNAMES names 1 sockets, LISTEN_FDS says 2",
        ),
    ],
)
def test_garbage_variables_are_one_clear_line(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        take(env, pid=7)
    assert said in caught.value.message and "\n" not in caught.value.message
    assert env == {}  # removed even so


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.set_inheritable(True)  # as a service manager passes it
    yield s
    s.close()


@pytest.fixture
def tcp() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def _given(sock: socket.socket) -> int:
    """A duplicate of ``sock``'s descriptor, for ``choose`` to own (and close)."""
    return os.dup(sock.fileno())


def test_the_udp_socket_is_radius_and_the_listening_tcp_socket_the_sdk(
    udp: socket.socket, tcp: socket.socket
) -> None:
    for names in (("radius", "http"), ("", ""), ("openmfa-radius.socket", "openmfa.socket")):
        passed = choose([(_given(udp), names[0]), (_given(tcp), names[1])])
        assert passed.radius is not None and passed.http is not None
        assert passed.radius.getsockname() == udp.getsockname()
        assert passed.http.getsockname() == tcp.getsockname()
        assert not passed.radius.getblocking()  # the commit thread reads it without waiting
        assert not passed.radius.get_inheritable() and not passed.http.get_inheritable()
        passed.radius.close()
        passed.http.close()
    only = choose([(_given(udp), "radius")])
    assert only.http is None and only.radius is not None
    assert activation.address(only.radius) == f"127.0.0.1:{udp.getsockname()[1]}"
    only.radius.close()


def test_a_stream_socket_named_radius_is_refused(tcp: socket.socket) -> None:
    with pytest.raises(ConfigError) as caught:
        choose([(_given(tcp), "radius")])
    said = caught.value.message
    assert "named radius (descriptor" in said and "is a TCP socket, but RADIUS is UDP" in said
    assert "ListenDatagram=" in said


def test_a_descriptor_that_is_no_socket_is_refused() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(ConfigError) as caught:
            choose([(r, "radius")])
        assert f"descriptor {r} (radius) from the service manager is not a socket" in (
            caught.value.message
        )
        closed = os.dup(w)
        os.close(closed)
        with pytest.raises(ConfigError, match="is not open"):
            choose([(closed, "")])
    finally:
        os.close(r)
        os.close(w)


def test_a_unix_socket_or_a_tcp_socket_that_does_not_listen_is_refused() -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with unix, idle:
        with pytest.raises(ConfigError, match=r"is a unix socket, but RADIUS is UDP"):
            choose([(_given(unix), "radius")])
        with pytest.raises(ConfigError, match=r"is a unix socket; the \.socket unit should"):
            choose([(_given(unix), "")])
        with pytest.raises(ConfigError, match="a TCP socket that does not listen, but the SDK"):
            choose([(_given(idle), "http")])


def test_two_radius_sockets_are_refused(udp: socket.socket) -> None:
    with pytest.raises(ConfigError) as caught:
        choose([(_given(udp), "radius"), (_given(udp), "radius")])
    assert "passed 2 radius sockets" in caught.value.message
    assert "keep a single ListenDatagram=" in caught.value.message


def test_a_restart_outside_the_manager_binds_where_the_passed_sockets_are(
    udp: socket.socket, tcp: socket.socket
) -> None:
    passed = Passed(radius=udp, http=tcp)
    r, h = udp.getsockname()[1], tcp.getsockname()[1]
    argv = ["serve", "--radius-listen", "0.0.0.0:1812", "--data-dir", "/d", "--listen=[::1]:1"]
    assert restart_argv(argv, passed) == [
        "serve",
        "--data-dir",
        "/d",
        "--listen",
        f"127.0.0.1:{h}",
        "--radius-listen",
        f"127.0.0.1:{r}",
    ]
    assert restart_argv(["serve"], Passed(radius=udp)) == [
        "serve",
        "--radius-listen",
        f"127.0.0.1:{r}",
    ]


def test_the_systemd_units_pass_what_the_node_reads() -> None:
    """docs/systemd: the socket is named as the node looks for it, and its traffic starts the
    service it belongs to."""
    units = Path(__file__).resolve().parents[1] / "docs" / "systemd"
    socket_unit = (units / "openmfa-radius.socket").read_text()
    service = (units / "openmfa.service").read_text()
    assert f"FileDescriptorName={activation.RADIUS}\n" in socket_unit
    assert "\nListenDatagram=1812\n" in socket_unit and "Service=openmfa.service" in socket_unit
    assert "Sockets=openmfa-radius.socket" in service
    assert "Environment=OPENMFA_SERVICE_UNIT=openmfa.service" in service  # node.control reads it
