"""The rolling upgrade's hand-off between two nodes, judged by a real HAProxy.

The cause of a 503 "No server is available" seen once under load in the shared-database farm
test: after a node was moved (its agent restarted it), the orchestrator put it back in the load
balancer as soon as the node itself answered, and drained the next node within milliseconds,
while HAProxy still held the first one DOWN from its restart (its health checks had not run
yet). For up to a check interval or two no server was up. A rollback showed it most: no
journal keeps a node "upgrading" while it verifies, so the next node went out the moment the
restarted one answered. HAProxy's log of that run:

    03:16:26.743594 Server openmfa/node-b is UP. 1 active and 0 backup servers online.
    03:16:26.888434 Server openmfa/node-b is UP (leaving forced drain).
    03:16:26.895611 Server openmfa/node-a enters drain state. 1 active ...
    03:16:29.497089 Server openmfa/node-a is DOWN (leaving forced drain).

Here two real nodes sit behind HAProxy with the README's configuration; each "move" (the farm
agent's part, played by the test) stops the node, waits until HAProxy has marked it DOWN, and
starts it again. Requests go through HAProxy the whole time: none may fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openmfa.farm.balancer import HAProxy
from openmfa.farm.membership import SHARED
from openmfa.farm.move import Act, NodeMove, Pacing
from openmfa.farm.wire import Hello
from openmfa.radius.server import ClientTable

from .farm_scenario import haproxy_config_for
from .helpers import OPENMFA, free_port


class Node:
    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.var = base / name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.release = "1.0"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [OPENMFA, "init", "--data-dir", str(self.var)], check=True, capture_output=True
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [OPENMFA, "serve", "--data-dir", str(self.var), "--listen", f"127.0.0.1:{self.port}",
             "--radius-listen", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ready():
            assert time.monotonic() < deadline, f"{self.name} did not start"
            time.sleep(0.05)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def server_status(lb: HAProxy, name: str) -> str:
    text = lb.command("show stat").lstrip("# ")
    import csv
    import io

    for row in csv.DictReader(io.StringIO(text)):
        if row["pxname"] == "openmfa" and row["svname"] == name:
            return str(row["status"])
    raise AssertionError(f"no server {name}")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[list[Node], HAProxy, int]]:
    nodes = [Node(tmp_path, "node-a"), Node(tmp_path, "node-b")]
    for n in nodes:
        n.start()
    port = free_port()
    cfg = haproxy_config_for(tmp_path, port, [(n.name, n.port) for n in nodes])
    log = (tmp_path / "haproxy.log").open("w")
    haproxy = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=log, stderr=log)
    lb = HAProxy(tmp_path / "haproxy.sock", "openmfa")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if all(server_status(lb, n.name) == "UP" for n in nodes):
                    break
            except Exception:  # noqa: S110 - the socket is not there yet
                pass
            assert time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
            time.sleep(0.1)
        yield nodes, lb, port
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        log.close()
        for n in nodes:
            n.stop()


class Peers:
    """The nodes as the farm upgrade's move reaches them, for nodes that are not in a farm: only
    the agent's part (the node's restart) is played by the test."""

    def __init__(self, nodes: list[Node], lb: HAProxy) -> None:
        self.by_url = {n.url: n for n in nodes}
        self.lb = lb

    def ready(self, url: str) -> bool:
        return self.by_url[url].ready()

    def hello(self, url: str) -> Hello | None:
        node = self.by_url[url]
        if not node.ready():
            return None
        return Hello(
            name=node.name,
            role=SHARED,
            epoch=1,
            master_url="",
            url=url,
            position=0,
            release=node.release,
            reads=[1, 2],
        )

    def post(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response:
        node = self.by_url[url]
        lb = self.lb
        if path == "/v1/farm/rollback":  # the agent: stop, out of HAProxy's view, back
            node.stop()
            deadline = time.monotonic() + 60
            while not server_status(lb, node.name).startswith("DOWN"):
                assert time.monotonic() < deadline, server_status(lb, node.name)
                time.sleep(0.05)
            node.release = "0.9"
            node.start()
            return httpx.Response(200, json={"pid": 1, "log": "farm-rollback.log"})
        return httpx.Response(404, json={"code": "not_found"})  # no RADIUS draining here


def test_the_next_node_goes_out_only_once_the_previous_one_serves_again(
    pair: tuple[list[Node], HAProxy, int],
) -> None:
    nodes, lb, port = pair
    failed: list[str] = []
    answered = 0
    done = threading.Event()

    def load() -> None:
        nonlocal answered
        with httpx.Client(timeout=10) as client:
            for _ in range(20_000):  # bounded: stops by itself
                if done.is_set():
                    return
                try:
                    r = client.get(f"http://127.0.0.1:{port}/healthz")
                    if r.status_code != 200:
                        failed.append(f"{r.status_code} {r.text[:80]}")
                    answered += 1
                except httpx.HTTPError as exc:
                    failed.append(repr(exc))
                time.sleep(0.02)

    said: list[str] = []
    move = NodeMove(
        Peers(nodes, lb),
        lb,
        {n.name: n.url for n in nodes},
        said.append,
        shared=True,
        pacing=Pacing(node_timeout=60.0, drain_timeout=5.0, min_up=1, up_timeout=60.0),
        radius_clients=lambda: ClientTable([]),
    )
    act = Act(
        target="0.9", path="/v1/farm/rollback", body={}, doing="rolling back", carry_radius=False
    )
    worker = threading.Thread(target=load)
    worker.start()
    try:
        for n in nodes:
            move(n.name, n.url, act)
    finally:
        done.set()
        worker.join(timeout=60)
    log = (lb.admin_socket.parent / "haproxy.log").read_text()
    assert failed == [], (failed[:5], said, log)
    assert answered > 20
    assert all(server_status(lb, n.name) == "UP" for n in nodes)
    assert sum("serves again" in line for line in said) == 2, said
    assert os.path.exists(lb.admin_socket)
