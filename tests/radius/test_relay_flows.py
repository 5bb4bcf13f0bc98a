"""``RelayFlows`` with a stand-in upstream (``exchange`` replaced) and a stand-in of what it
uses of ``AccessFlows``: an EAP Access-Accept that names nobody is refused with no push; an
answer too long for a packet becomes a plain Access-Reject; a task that fails unexpectedly still
answers. The real conversations (eapol_test, FreeRADIUS) are tests/e2e/test_radius_eap.py."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest

from openmfa.node.radius_clients import RadiusClient
from openmfa.radius import packet as p
from openmfa.radius import relay as r
from openmfa.radius import relay_flows as rf
from openmfa.radius.replies import Reply
from openmfa.store.changes import AuditEvent

NAS_SECRET = b"nas-secret-1"
EAP_SUCCESS = b"\x03\x08\x00\x04"
ROUND = [
    (p.USER_NAME, b"mallory"),  # the outer identity: the supplicant's choice
    (r.EAP_MESSAGE, b"\x02\x08\x00\x06\x19\x00"),
    (p.STATE, b"upstream-state"),
]


class Queue:
    def call(self, task: Callable[[], None]) -> None:
        task()


class Flows:
    """What ``RelayFlows`` uses of ``AccessFlows`` up to the push; a push asked is noted."""

    def __init__(self) -> None:
        self.queue = Queue()
        self.store = object()
        self._run, self._ids = "t", iter(range(1, 1000))
        self.tasks: list[asyncio.Task[None]] = []
        self.jobs: list[str] = []

    def _on_loop(self, fn: Any, *args: object) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(fn(*args)))

    def _job(self, client: Any, user: str, *rest: object) -> Any:
        self.jobs.append(user)
        raise AssertionError("no push may be asked")


class Config:
    values: dict[str, Any] = {
        "radius_upstream": {"address": "127.0.0.1:1", "secret": "upstream-secret"},
        "ntlm": {},
    }


def relayed(
    monkeypatch: pytest.MonkeyPatch,
    answer: p.Packet | Exception,
    attributes: list[tuple[int, bytes]] = ROUND,
    audit_fails: bool = False,
) -> tuple[list[Reply], list[AuditEvent], Flows]:
    """One request through ``RelayFlows.handle``, the upstream answering ``answer``."""
    audited: list[AuditEvent] = []

    async def exchange(*_: object) -> p.Packet:
        if isinstance(answer, Exception):
            raise answer
        return answer

    def record(store: object, event: AuditEvent) -> None:
        if audit_fails:
            raise RuntimeError("the database is gone")
        audited.append(event)

    monkeypatch.setattr(rf, "exchange", exchange)
    monkeypatch.setattr(rf.audit, "record", record)
    flows = Flows()
    relay = rf.RelayFlows(cast(Any, flows), cast(Any, Config()))
    client = RadiusClient(
        "wifi", ipaddress.ip_network("192.0.2.1"), NAS_SECRET, "radius", True, False, eap="relay"
    )
    pkt = p.decode(p.encode_request(p.ACCESS_REQUEST, 9, attributes, NAS_SECRET))
    answers: list[Reply] = []

    async def go() -> None:
        relay.handle(client, pkt, answers.append)
        for _ in range(100):  # the task and the threads it starts
            await asyncio.gather(*flows.tasks)
            if answers:
                break
            await asyncio.sleep(0.01)

    asyncio.run(go())
    return answers, audited, flows


def upstream(code: int, attributes: list[tuple[int, bytes]]) -> p.Packet:
    return p.Packet(code, 1, bytes(16), attributes, ma_at=22)


def test_an_eap_accept_that_names_nobody_is_refused_with_no_push(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Mallory, with alice's password, outer identity "mallory": were the push to go to the
    outer identity, Mallory would approve it and the NAS give alice's access."""
    accept = upstream(p.ACCESS_ACCEPT, [(r.EAP_MESSAGE, EAP_SUCCESS)])
    with caplog.at_level(logging.WARNING, "openmfa.radius"):
        answers, audited, flows = relayed(monkeypatch, accept)
    assert answers == [Reply(p.ACCESS_REJECT, [(r.EAP_MESSAGE, b"\x04\x08\x00\x04")])]
    assert flows.jobs == []  # no push, to anyone
    assert [(e.result, e.reason, e.user_name) for e in audited] == [
        ("rejected", "upstream_unnamed", "mallory")
    ]
    assert "names no user" in caplog.text and "outer.session-state" in caplog.text


def test_an_answer_too_long_for_a_packet_is_a_plain_reject(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream's Access-Challenge fits, but not with the NAS's Proxy-States: the NAS gets
    an Access-Reject with an EAP-Failure instead of no answer at all."""
    challenge = upstream(
        p.ACCESS_CHALLENGE,
        [*r.eap_split(b"\x01\x09\x0f\x00" + bytes(3836)), (p.STATE, b"s" * 16)],
    )
    proxied = [*ROUND, (p.PROXY_STATE, b"x" * 200)]
    with caplog.at_level(logging.ERROR, "openmfa.radius"):
        answers, _, _ = relayed(monkeypatch, challenge, proxied)
    assert answers == [Reply(p.ACCESS_REJECT, [(r.EAP_MESSAGE, b"\x04\x08\x00\x04")])]
    assert "above RADIUS's 4096" in caplog.text
    # without the Proxy-State it fits, and passes
    answers, _, _ = relayed(monkeypatch, challenge)
    assert [a.code for a in answers] == [p.ACCESS_CHALLENGE]
    assert r.answer_length(p.decode(p.encode_request(1, 1, proxied, NAS_SECRET)), []) == 240


@pytest.mark.parametrize("failure", ["audit", "upstream"])
def test_a_task_that_fails_unexpectedly_still_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    accept = upstream(p.ACCESS_ACCEPT, [(r.EAP_MESSAGE, EAP_SUCCESS)])
    answer: p.Packet | Exception = accept
    if failure == "upstream":  # parse_listen on a bad [radius_upstream] address
        answer = ValueError("not an address")
    with caplog.at_level(logging.ERROR, "openmfa.radius"):
        answers, _, flows = relayed(monkeypatch, answer, audit_fails=failure == "audit")
    assert answers == [Reply(p.ACCESS_REJECT, [(r.EAP_MESSAGE, b"\x04\x08\x00\x04")])]
    assert "a relayed request failed; rejected" in caplog.text
    assert "Traceback" in caplog.text and flows.jobs == []
