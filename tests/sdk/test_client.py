"""The SDK clients' pure parts: the request builder, what an answer means, the error classes."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from openmfa import errors
from openmfa.sdk import Requests, models
from openmfa.sdk.client import _Plan
from openmfa.sdk.errors import NotMaster, from_answer
from openmfa.sdk.plan import HANDOVER_PAUSES, Reply


def body(call_body: bytes | None) -> object:
    assert call_body is not None
    return msgspec.json.decode(call_body)


def test_every_call_is_described_without_io() -> None:
    call = Requests.get_user("DOM\\jo/smith")
    assert (call.method, call.path, call.kind) == ("GET", "/v1/users/DOM%5Cjo%2Fsmith", "read")
    auth = Requests.authenticate("alice", "123456")
    assert auth.kind == "authenticate" and body(auth.body) == {"user": "alice", "code": "123456"}
    patch = Requests.update_user("alice", enabled=False)
    assert patch.kind == "write" and body(patch.body) == {"enabled": False}  # only what is set
    enroll = Requests.enroll("alice", "hotp", digits=8)
    assert body(enroll.body) == {"kind": "hotp", "digits": 8}  # defaults are the node's
    assert Requests.delete_user("alice").answer is None
    audit = Requests.audit(user="alice", limit=5)
    assert audit.params == {"limit": 5, "after_id": 0, "user": "alice"}


def test_answers_decode_to_the_models() -> None:
    plan = _Plan("http://a", "k")
    raw = b'{"accepted":true,"reason":"ok","method_id":"m1","locked_until":null,"request_id":"r"}'
    step = plan.answered(Requests.authenticate("u", "1"), "http://a", 200, raw)
    assert step.value == models.DecisionView(
        accepted=True, reason="ok", method_id="m1", request_id="r"
    )


def test_each_error_code_raises_its_own_class() -> None:
    for code, cls in errors.by_code().items():
        err = from_answer(cls.http_status, {"code": code, "message": "m", "request_id": "r"})
        assert type(err) is cls and err.request_id == "r", code
    unknown = from_answer(418, {"code": "teapot", "message": "short and stout"})
    assert unknown.code == "teapot" and isinstance(unknown, errors.OpenMfaError)
    assert isinstance(from_answer(502, None, "<html>bad gateway"), errors.Unavailable)


def test_a_write_that_reaches_a_subordinate_follows_the_master() -> None:
    plan = _Plan(["http://sub:8480"], "k")
    call = Requests.create_user("alice")
    refusal = msgspec.json.encode(
        {"code": "not_master", "message": "m", "request_id": "r", "master_url": "http://m:8480/"}
    )
    step = plan.answered(call, "http://sub:8480", 409, refusal)
    assert step.next_url == "http://m:8480" and step.error is None
    assert plan.order(call)[0] == "http://m:8480"  # later writes go there first
    # the master itself saying not_master (a handover): no loop, the error is raised
    again = plan.answered(call, "http://m:8480", 409, refusal)
    assert again.next_url is None and isinstance(again.error, NotMaster)
    assert again.error.master_url == "http://m:8480/"
    # reads are not redirected: any node answers them
    assert plan.order(Requests.get_user("alice")) == ["http://sub:8480"]


def test_each_call_follows_the_master_even_when_another_call_learned_it_first() -> None:
    """The mobile service's long-poll and a phone's answer share one client: when a handover
    sends both to the new master at once, the answer follows too (it once stopped there, since
    the client knew that master already, and the phone's approval failed)."""
    plan = _Plan(["http://lb:8443"], "k")
    call = Requests.answer_push("payload", "signature")

    def refusal(master: str) -> bytes:
        return msgspec.json.encode(
            {"code": "not_master", "message": "m", "request_id": "r", "master_url": master}
        )

    plan.master = "http://new:8480"  # what the long-poll learned a moment ago
    step = plan.answered(call, "http://old:8480", 409, refusal("http://new:8480/"))
    assert step.next_url == "http://new:8480" and step.error is None
    # a node not yet told names the former master, which names the new one: both followed
    hops = [("http://c:8480", "http://old:8480/"), ("http://old:8480", "http://new:8480/")]
    for followed, (url, master) in enumerate(hops):
        step = plan.answered(call, url, 409, refusal(master), followed=followed)
        assert step.next_url == master.rstrip("/")
    # two nodes naming each other: the call ends after a few hops with the error
    ended = plan.answered(call, "http://old:8480", 409, refusal("http://c:8480"), followed=3)
    assert ended.next_url is None and isinstance(ended.error, NotMaster)


def test_failover_only_where_it_cannot_do_harm() -> None:
    plan = _Plan(["http://a", "http://b"], "k")
    refused = httpx.ConnectError("refused")
    timeout = httpx.ReadTimeout("slow")
    read, auth, write = (
        Requests.get_user("u"),
        Requests.authenticate("u", "1"),
        Requests.unlock_user("u"),
    )
    assert plan.unreachable(read, "http://a", timeout).failover  # a read may be repeated
    assert plan.unreachable(auth, "http://a", refused).failover  # never reached the node
    assert not plan.unreachable(auth, "http://a", timeout).failover  # may have used the code
    assert not plan.unreachable(write, "http://a", timeout).failover
    busy = msgspec.json.encode({"code": "not_ready", "message": "starting", "request_id": ""})
    assert plan.answered(read, "http://a", 503, busy).failover
    assert not plan.answered(write, "http://a", 503, busy).failover
    ok = b'{"status":"ready"}'
    plan.answered(Requests.ready(), "http://b", 200, ok)
    assert plan.order(read) == ["http://b", "http://a"]  # the node that answered last first


def test_a_node_too_old_for_the_client_is_refused_clearly() -> None:
    plan = _Plan("http://a", "k")
    old = models.VersionInfo(
        release="0.9.0", data_format=1, writes_format=1, reads_formats=[1, 1], node="a",
        sdk_versions=[0],
    )  # fmt: skip
    with pytest.raises(errors.NodeTooOld) as err:
        plan.check_version("http://a", old)
    assert "serves SDK versions [0]; this client speaks version 1" in err.value.message
    plan.check_version(
        "http://a",
        msgspec.convert({**msgspec.to_builtins(old), "sdk_versions": [1]}, models.VersionInfo),
    )
    assert "http://a" in plan.checked


def test_each_code_names_one_class_with_a_status() -> None:
    named = [c for c in errors._tree(errors.OpenMfaError) if "code" in vars(c)]
    codes = [c.code for c in named]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(400 <= c.http_status <= 599 for c in named)


def test_the_send_loop_is_a_generator_any_sender_can_drive() -> None:
    """``Plan.flow`` yields each request to make and is sent what came of it; a node that
    cannot be reached (here at its /version) passes a read to the next."""
    plan = _Plan(["http://a", "http://b"], "k")
    flow = plan.flow(Requests.get_user("alice"), "rid-1")
    first = next(flow)
    assert (first.method, first.url, first.params) == ("GET", "http://a/version", None)
    second = flow.send(httpx.ConnectError("refused"))
    assert (second.method, second.url) == ("GET", "http://b/version")
    version = models.VersionInfo(
        release="1", data_format=1, writes_format=1, reads_formats=[1, 1], node="b"
    )
    call = flow.send(Reply(200, msgspec.json.encode(version)))
    assert (call.method, call.url) == ("GET", "http://b/v1/users/alice")
    assert call.headers["X-Request-ID"] == "rid-1" and call.timeout is None  # the client's own
    user = models.UserView(
        name="alice", display_name="", email="", phone="", enabled=True, created_at=1,
        updated_at=1,
    )  # fmt: skip
    with pytest.raises(StopIteration) as done:
        flow.send(Reply(200, msgspec.json.encode(user)))
    assert done.value.value == user
    assert plan.checked == {"http://b"} and plan.order(Requests.get_user("x"))[0] == "http://b"
    again = plan.flow(Requests.get_user("alice"))
    assert next(again).url == "http://b/v1/users/alice"  # checked once, not again


def test_a_write_to_a_master_that_stopped_goes_on_to_the_node_that_leads_now() -> None:
    """A farm's handover: the client learned node b was the master; b was demoted and stopped
    (a rollback), a leads now. The write cannot reach b (never sent), so it goes on to a — a
    write that reached a node is never sent again (the failover rules above)."""
    plan = _Plan(["http://a", "http://b"], "k", check_version=False)
    plan.master = "http://b"
    call = Requests.unlock_user("alice")
    assert plan.order(call) == ["http://b", "http://a"]
    flow = plan.flow(call, "rid-2")
    assert next(flow).url == "http://b/v1/users/alice/unlock"
    second = flow.send(httpx.ConnectError("refused"))
    assert second.url == "http://a/v1/users/alice/unlock"
    assert second.headers["X-Request-ID"] == "rid-2"
    slow = plan.flow(call, "rid-3")
    next(slow)
    with pytest.raises(errors.Unavailable):
        slow.send(httpx.ReadTimeout("slow"))  # may have reached the node: not sent again


def test_a_write_refused_during_a_handover_is_sent_again_after_a_pause() -> None:
    """A rollback moves the master role: the node asked hands over (``not_master`` naming no
    one), or names itself. It changed nothing, so the write goes again, to every node, after a
    pause; a handover that never ends raises the refusal after the last pause."""
    plan = _Plan(["http://a", "http://b"], "k", check_version=False)
    call = Requests.delete_user("alice")
    handing = msgspec.json.encode({"code": "not_master", "message": "handing over"})
    flow = plan.flow(call, "rid-4")
    first = next(flow)
    assert (first.url, first.pause) == ("http://a/v1/users/alice", 0.0)
    second = flow.send(Reply(409, handing))
    assert second.url == "http://b/v1/users/alice"
    assert second.pause == HANDOVER_PAUSES[0] and second.headers["X-Request-ID"] == "rid-4"
    with pytest.raises(StopIteration):
        flow.send(Reply(204, b""))
    # a farm that never ends its handover: every pause, then the refusal
    stuck = plan.flow(call)
    attempt = next(stuck)
    pauses = []
    with pytest.raises(NotMaster):
        while True:
            pauses.append(attempt.pause)
            attempt = stuck.send(Reply(409, handing))
    assert [p for p in pauses if p] == list(HANDOVER_PAUSES)
    # reads are not repeated this way: any node answers them
    read = plan.answered(Requests.get_user("alice"), "http://a", 409, handing)
    assert not read.again


def test_a_node_in_the_same_process_is_not_asked_again_after_a_pause() -> None:
    """The portal, console or mobile service inside ``openmfa serve`` reach their node in
    process: a try after a pause would reach that very node again, so a refused write fails at
    once there; over the network it is tried again during a handover."""
    from openmfa.sdk.async_client import AsyncSdkClient
    from openmfa.sdk.client import SdkClient

    local = httpx.ASGITransport(app=lambda scope, receive, send: None)  # type: ignore[arg-type]
    assert AsyncSdkClient("http://node", "k", transport=local)._plan.pauses == ()
    assert SdkClient("http://node", "k")._plan.pauses == HANDOVER_PAUSES
    assert AsyncSdkClient(["http://a", "http://b"], "k")._plan.pauses == HANDOVER_PAUSES
