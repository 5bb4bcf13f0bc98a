"""Push sign-in end to end: a node and the Mobile App Web Service as separate processes, the
reference authenticator (``openmfa-authenticator``) as the phone, the SDK client as the app
that signs people in, and ``radclient`` as the RADIUS gateway."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from openmfa.core import push as proto
from openmfa.errors import DeviceRefused, InvalidInput, NotFound, PushClosed, Unauthorized
from openmfa.sdk.client import SdkClient

from .helpers import (
    AUTHENTICATOR,
    OPENMFA,
    Phone,
    Server,
    cli,
    free_port,
    init,
    oathtool,
    server,
    wait_for,
)
from .services import free_udp_port

SECRET = "gateway-secret-push"


@dataclass
class Push:
    dd: Path
    node: Server
    mobile: subprocess.Popen[str]
    mobile_url: str
    admin: str
    hook_log: Path
    radius_port: int

    def sdk(self) -> SdkClient:
        return SdkClient(self.node.url, self.admin)

    def phone(self, user: str, tmp: Path, alg: str = "ES256") -> Phone:
        code = json.loads(cli(self.dd, "device", "activate", user, "--json").stdout)
        assert code["url"] == self.mobile_url
        phone = Phone(tmp / f"{user}-{alg}-{time.monotonic_ns()}.json")
        out = phone.run("activate", code["url"], code["code"], "--alg", alg).stdout
        assert "activated device" in out
        assert phone.state.stat().st_mode & 0o777 == 0o600
        return phone


def _mobile(dd: Path, port: int, node_url: str, key: str, extra: str = "") -> subprocess.Popen[str]:
    key_file = dd / "mobile.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    config = dd / "mobile.toml"
    config.write_text(
        f'[mobile]\nlisten = "127.0.0.1:{port}"\nnodes = ["{node_url}"]\n'
        f'api_key_file = "mobile.key"\nlong_poll_seconds = 30\n{extra}'
    )
    with (dd / "mobile.log").open("w") as log:
        proc = subprocess.Popen(
            [OPENMFA, "mobile", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}/mobile"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (dd / "mobile.log").read_text()
        try:
            if httpx.get(url + "/v1/info", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (dd / "mobile.log").read_text()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def push(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Push]:
    base = tmp_path_factory.mktemp("push")
    dd = base / "node"
    dd.mkdir()
    hook_log = base / "fraud-events.jsonl"
    hook = base / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat >> {hook_log}\necho >> {hook_log}\n")
    hook.chmod(0o755)
    admin = init(dd)
    mobile_key = cli(dd, "apikey", "create", "mobile", "--scope", "mobile").stdout.split()[-1]
    assert mobile_key.startswith("omfa_")
    node_port, mobile_port = free_port(), free_port()
    mobile_url = f"http://127.0.0.1:{mobile_port}/mobile"
    with (dd / "server.toml").open("a") as f:
        f.write(
            f'\n[mobile]\npublic_url = "{mobile_url}"\nmin_gap_seconds = 0.0\n'
            f'request_seconds = 20\nfraud_command = "{hook}"\n'
        )
    # RADIUS gateways, told apart by source address: 127.0.0.1 challenges, 127.0.0.2 holds,
    # 127.0.0.3 holds for one second only, 127.0.0.4 has push off, 127.0.0.5 checks the
    # node's own password first.
    for name, address, options in (
        ("gw", "127.0.0.1", []),
        ("gw-hold", "127.0.0.2", ["--push", "hold", "--hold-seconds", "30"]),
        ("gw-short", "127.0.0.3", ["--push", "hold", "--hold-seconds", "1"]),
        ("gw-off", "127.0.0.4", ["--push", "off"]),
        ("gw-local", "127.0.0.5", ["--primary", "local"]),
    ):
        cli(dd, "radius", "client", "add", name, "--address", address, "--secret", SECRET, *options)
    listed = cli(dd, "radius", "client", "list").stdout
    assert "push=challenge" in listed and "push=hold hold=30s" in listed, listed
    udp = free_udp_port()
    with server(dd, port=node_port, radius=f"127.0.0.1:{udp}") as node:
        proc = _mobile(dd, mobile_port, node.url, mobile_key)
        try:
            yield Push(dd, node, proc, mobile_url, admin, hook_log, udp)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_the_mobile_services_openapi_document_is_true(push: Push, tmp_path: Path) -> None:
    """schemathesis against the running mobile service, from its own document, every check:
    activation, polls and answers with whatever a phone might send (forged signatures, unknown
    codes, wrong types) get the documented answers, never a 500. Bounded: fixed seed, 40
    examples per operation."""
    import re

    doc = httpx.get(push.mobile_url + "/v1/openapi.json", timeout=10).json()
    assert set(doc["paths"]) == {
        f"/mobile{p}" for p in ("/healthz", "/v1/info", "/v1/activate", "/v1/poll", "/v1/answer")
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")), "run",
            push.mobile_url + "/v1/openapi.json", "--checks", "all", "--max-examples", "40",
            "--seed", "20261202", "--workers", "1", "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its cache (.schemathesis/) is the run's, not the checkout's
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    summary = re.search(r"^=+ (.*) in [\d.]+s =+$", proc.stdout, re.M)
    assert summary is not None, proc.stdout[-3000:]
    assert re.fullmatch(r"No issues found|\d+ warnings?", summary.group(1)), proc.stdout[-3000:]
    assert push.mobile.poll() is None


def test_activation_the_offline_code_and_the_device_list(push: Push, tmp_path: Path) -> None:
    cli(push.dd, "user", "add", "olga")
    phone = push.phone("olga", tmp_path)
    listed = json.loads(cli(push.dd, "device", "list", "olga", "--json").stdout)
    assert [d["id"] for d in listed] == [phone.device_id] and listed[0]["alg"] == "ES256"
    with push.sdk() as sdk:
        code = phone.run("code").stdout.strip()
        d = sdk.authenticate("olga", code)
        assert d.accepted and d.method_id == phone.device_id
        assert sdk.authenticate("olga", code).reason == "replay"  # like any TOTP code
    # An activation code is single use.
    code = json.loads(cli(push.dd, "device", "activate", "olga", "--json").stdout)
    Phone(tmp_path / "second.json").run("activate", code["url"], code["code"])
    again = Phone(tmp_path / "third.json").run("activate", code["url"], code["code"], expect=1)
    assert "activation_refused" in again.stderr and "used" in again.stderr


def test_push_approved_with_the_number_through_the_sdk_long_poll(
    push: Push, tmp_path: Path
) -> None:
    cli(push.dd, "user", "add", "paula")
    phone = push.phone("paula", tmp_path, alg="EdDSA")
    with push.sdk() as sdk:
        d = sdk.authenticate("paula", push=True, source="198.51.100.7")
        assert not d.accepted and d.reason == "pending" and d.pending is not None
        assert d.pending.number.isdigit() and len(d.pending.number) == 2
        # The phone sees the context, never the number.
        waiting = phone.pending(wait=10)
        assert [r["id"] for r in waiting] == [d.pending.id]
        assert waiting[0]["source"] == "198.51.100.7" and "number" not in waiting[0]
        assert sdk.push_outcome(d.pending.id).status == "pending"
        phone.run("approve", d.pending.id, "--number", d.pending.number)
        out = sdk.push_outcome(d.pending.id, wait=10)
        assert out.status == "accepted" and out.accepted
        # Answered once: a second approval is refused.
        again = phone.run("approve", d.pending.id, "--number", d.pending.number, expect=1)
        assert "no push request" in again.stderr
    events = audit(push, "paula")
    assert ("push.answer", "accepted", "approved") in events
    # /metrics: the answer at the node; the phone's requests at the mobile service
    node_text = httpx.get(push.node.url + "/metrics", timeout=10).text
    assert 'openmfa_push_answers_total{result="accepted"}' in node_text
    mobile_text = httpx.get(push.mobile_url.removesuffix("/mobile") + "/metrics", timeout=10).text
    assert 'openmfa_build_info{part="mobile"' in mobile_text
    assert (
        'openmfa_http_requests_total{endpoint="answer",part="mobile",status="200"}' in mobile_text
    )


def test_a_waiting_poll_is_woken_by_a_new_request(push: Push, tmp_path: Path) -> None:
    """The phone's long-poll on the mobile service returns when the push is opened."""
    cli(push.dd, "user", "add", "quinn")
    phone = push.phone("quinn", tmp_path)
    env = {**os.environ, "OPENMFA_AUTHENTICATOR_STATE": str(phone.state)}
    waiter = subprocess.Popen(
        [AUTHENTICATOR, "pending", "--json", "--wait", "60"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(
            lambda: push_app_holds(push) >= 1, "the phone's poll is held by the mobile service"
        )
        with push.sdk() as sdk:
            d = sdk.authenticate("quinn", push=True)
            assert d.pending is not None
            out, _ = waiter.communicate(timeout=30)
        assert [r["id"] for r in json.loads(out)] == [d.pending.id]
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_a_watching_phone_keeps_one_long_poll_and_answers_from_its_input(
    push: Push, tmp_path: Path
) -> None:
    """``watch``: the authenticator stays running, as an app does; each new request is shown
    once, a second one is shown while the first still waits, and answers are read from its
    input."""
    cli(push.dd, "user", "add", "ulla")
    watching = push.phone("ulla", tmp_path).watch()
    try:
        wait_for(lambda: push_app_holds(push) >= 1, "the watching phone's poll is held")
        with push.sdk() as sdk:
            first = sdk.authenticate("ulla", push=True).pending
            assert first is not None
            shown = watching.seen(first.id, timeout=30)
            assert shown is not None and shown["user"] == "ulla" and "number" not in shown
            second = sdk.authenticate("ulla", push=True).pending
            assert second is not None
            assert watching.seen(second.id, timeout=30) is not None
            assert watching.answer(first.id, "approve", first.number, 30) == {
                "answered": first.id,
                "status": "accepted",
            }
            assert sdk.push_outcome(first.id, wait=10).accepted
            assert watching.answer(second.id, "deny", "", 30)["status"] == "denied"
            assert sdk.push_outcome(second.id, wait=10).status == "denied"
            # Answered already: refused, and said so on its output, not fatal to it.
            again = watching.answer(first.id, "approve", first.number, 30)
            assert "error" in again and "status" not in again, again
            assert watching.proc.stdin is not None
            watching.proc.stdin.write("approve\n")
            watching.proc.stdin.flush()
            wait_for(lambda: any("not understood" in n.get("error", "") for n in watching.notes),
                     "the bad line is said to be not understood")  # fmt: skip
            third = sdk.authenticate("ulla", push=True).pending
            assert third is not None and watching.seen(third.id, timeout=30) is not None
            assert watching.answer(third.id, "approve", third.number, 30)["status"] == "accepted"
        assert watching.proc.poll() is None  # still running through all of it
    finally:
        watching.close()
    assert watching.proc.returncode == 0  # its input ended: it ended, cleanly
    assert ("push.answer", "accepted", "approved") in audit(push, "ulla")


def push_app_holds(push: Push) -> int:
    held: int = httpx.get(push.mobile_url + "/healthz").json()["held"]
    return held


def test_wrong_number_deny_and_the_rate_limit(push: Push, tmp_path: Path) -> None:
    cli(push.dd, "user", "add", "rita")
    phone = push.phone("rita", tmp_path)
    with push.sdk() as sdk:
        d = sdk.authenticate("rita", push=True)
        assert d.pending is not None
        wrong = "10" if d.pending.number != "10" else "11"
        assert phone.run("approve", d.pending.id, "--number", wrong, expect=1).stdout.strip() == (
            "denied"
        )
        assert sdk.push_outcome(d.pending.id).status == "denied"
        d = sdk.authenticate("rita", push=True)
        assert d.pending is not None
        assert phone.run("deny", d.pending.id).stdout.strip() == "denied"
        assert sdk.push_outcome(d.pending.id, wait=5).status == "denied"
        # At most three open at once ([mobile] open_per_user): the fourth is refused.
        opened = [sdk.authenticate("rita", push=True) for _ in range(3)]
        assert all(o.reason == "pending" for o in opened)
        limited = sdk.authenticate("rita", push=True)
        assert limited.reason == "push_limited" and limited.pending is None
        assert len(phone.pending()) == 3
        # The same request id joins the open request: no second push.
        first = sdk.authenticate("rita", push=True, request_id="login-42")
        assert first.reason == "push_limited"  # still three open
        for o in opened:
            assert o.pending is not None
            phone.run("deny", o.pending.id)
        first = sdk.authenticate("rita", push=True, request_id="login-42")
        second = sdk.authenticate("rita", push=True, request_id="login-42")
        assert first.pending is not None and second.pending is not None
        assert first.pending.id == second.pending.id
        assert len(phone.pending()) == 1
        with pytest.raises(InvalidInput):
            sdk.authenticate("rita", "123456", push=True)
    events = audit(push, "rita")
    assert ("push.answer", "rejected", "wrong_number") in events
    assert ("push.answer", "rejected", "declined") in events
    assert ("authenticate", "rejected", "push_limited") in events


def test_replayed_forged_and_revoked_answers_are_refused(push: Push, tmp_path: Path) -> None:
    cli(push.dd, "user", "add", "sam")
    phone = push.phone("sam", tmp_path)
    state = json.loads(phone.state.read_text())
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(state["private_key"].encode(), None)
    with push.sdk() as sdk:
        d = sdk.authenticate("sam", push=True)
        assert d.pending is not None
        nonce = phone.pending()[0]["nonce"]
        body = {
            "v": 1,
            "op": "answer",
            "request_id": d.pending.id,
            "nonce": nonce,
            "decision": "approve",
            "number": d.pending.number,
            "device_id": phone.device_id,
            "counter": 7,
            "ts": int(time.time()),
        }
        # Forged: signed by another key.
        from cryptography.hazmat.primitives.asymmetric import ec

        forged = proto.sign_message(ec.generate_private_key(ec.SECP256R1()), body)
        r = httpx.post(
            push.mobile_url + "/v1/answer", json={"payload": forged[0], "signature": forged[1]}
        )
        assert r.status_code == 403 and r.json()["code"] == "device_refused", r.text
        # Not canonical: refused, whatever the signature.
        loose = proto.b64u(json.dumps(body, indent=1).encode())
        r = httpx.post(
            push.mobile_url + "/v1/answer", json={"payload": loose, "signature": forged[1]}
        )
        assert r.status_code == 403 and "canonical" in r.json()["message"]
        # The wrong nonce: refused.
        payload, signature = proto.sign_message(key, {**body, "nonce": proto.new_nonce()})
        with pytest.raises(DeviceRefused, match="nonce"):
            sdk.answer_push(payload, signature)
        payload, signature = proto.sign_message(key, body)
        assert sdk.answer_push(payload, signature).status == "accepted"
        # The very same answer again: refused (the request is closed, the counter used).
        with pytest.raises(PushClosed):
            sdk.answer_push(payload, signature)
        # A later request answered with an old counter: a replay.
        d = sdk.authenticate("sam", push=True)
        assert d.pending is not None
        old = {**body, "request_id": d.pending.id, "nonce": phone.pending()[0]["nonce"]}
        payload, signature = proto.sign_message(key, old)
        with pytest.raises(DeviceRefused, match="counter"):
            sdk.answer_push(payload, signature)
        # Revoked: the device's answers are refused, and it no longer gets pushes.
        cli(push.dd, "device", "revoke", "sam", phone.device_id)
        payload, signature = proto.sign_message(key, {**old, "counter": 99})
        with pytest.raises(DeviceRefused, match="not activated"):
            sdk.answer_push(payload, signature)
        assert sdk.authenticate("sam", push=True).reason == "no_method"
        with pytest.raises(NotFound):
            sdk.push_outcome("p-no-such-request")
    refused = [e for e in audit(push, "") if e[0] == "push.answer" and e[1] == "rejected"]
    assert {"device", "nonce", "closed", "replay"} <= {e[2] for e in refused}, refused


def test_this_was_not_me_blocks_push_audits_and_runs_the_hook(push: Push, tmp_path: Path) -> None:
    cli(push.dd, "user", "add", "tina")
    phone = push.phone("tina", tmp_path)
    with push.sdk() as sdk:
        d = sdk.authenticate("tina", push=True, source="192.0.2.66")
        assert d.pending is not None
        assert phone.run("deny", d.pending.id, "--fraud").stdout.strip() == "fraud"
        assert sdk.push_outcome(d.pending.id).status == "fraud"
        assert sdk.authenticate("tina", push=True).reason == "push_blocked"
        # The offline code still works: the user is not locked out of everything.
        assert sdk.authenticate("tina", phone.run("code").stdout.strip()).accepted
        wait_for(lambda: push.hook_log.exists() and "tina" in push.hook_log.read_text(), "hook")
        event = json.loads(push.hook_log.read_text().strip().splitlines()[-1])
        assert event["event"] == "fraud.report" and event["source"] == "192.0.2.66"
        assert "unblocked" in cli(push.dd, "device", "unblock", "tina").stdout
        assert sdk.authenticate("tina", push=True).reason == "pending"
    assert ("fraud.report", "ok", "block_push") in audit(push, "tina")


def test_an_unanswered_request_expires(push: Push, tmp_path: Path) -> None:
    cli(push.dd, "user", "add", "uma")
    push.phone("uma", tmp_path)
    with push.sdk() as sdk:
        d = sdk.authenticate("uma", push=True)
        assert d.pending is not None
        deadline = time.monotonic() + 60
        status = "pending"
        while status == "pending" and time.monotonic() < deadline:
            status = sdk.push_outcome(d.pending.id, wait=30).status
        assert status == "expired"


def audit(push: Push, user: str) -> list[tuple[str, str, str]]:
    args = ["audit", "--json", "--limit", "1000"] + (["--user", user] if user else [])
    rows = [json.loads(line) for line in cli(push.dd, *args).stdout.splitlines() if line]
    return [(r["action"], r["result"], r["reason"]) for r in rows]


# -- RADIUS --------------------------------------------------------------------------------------


def radclient(
    push: Push,
    attrs: dict[str, str],
    *,
    source: str = "127.0.0.1",
    timeout: float = 1,
    retries: int = 1,
) -> tuple[str | None, dict[str, str]]:
    proc = radclient_start(push, attrs, source=source, timeout=timeout, retries=retries)
    return radclient_result(finish(proc))


def finish(proc: subprocess.Popen[str]) -> str:
    """radclient's output once it is done (it stops by itself: its timeout times retries)."""
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    proc.wait(timeout=120)
    return out


def radclient_start(
    push: Push,
    attrs: dict[str, str],
    *,
    source: str = "127.0.0.1",
    timeout: float = 1,
    retries: int = 1,
) -> subprocess.Popen[str]:
    """radclient as a gateway at ``source``: sends, retransmits ``retries`` times ``timeout``
    seconds apart, prints the reply."""
    lines = [f'{k} = "{v}"' if not v.startswith("0x") else f"{k} = {v}" for k, v in attrs.items()]
    lines += [f"Packet-Src-IP-Address = {source}", "Message-Authenticator = 0x00"]
    proc = subprocess.Popen(
        [
            "radclient",
            "-x",
            "-t",
            str(timeout),
            "-r",
            str(retries),
            f"127.0.0.1:{push.radius_port}",
            "auth",
            SECRET,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.close()
    return proc


def radclient_result(out: str) -> tuple[str | None, dict[str, str]]:
    m = re.search(r"^Received (\S+) Id", out, re.M)
    if not m:
        return None, {}
    found = dict(re.findall(r"^\s+(\S+) = (.+)$", out[m.end() :], re.M))
    return m.group(1), {k: v.strip('"') for k, v in found.items()}


def test_radius_challenge_shows_the_number_and_the_follow_up_is_accepted(
    push: Push, tmp_path: Path
) -> None:
    cli(push.dd, "user", "add", "vera")
    phone = push.phone("vera", tmp_path)
    kind, attrs = radclient(push, {"User-Name": "vera", "User-Password": ""})
    assert kind == "Access-Challenge", (kind, attrs)
    number = attrs["Reply-Message"].rsplit(": ", 1)[1]
    assert attrs["Reply-Message"] == f"Approve on your phone: {number}"
    (request,) = phone.pending(wait=10)
    assert request["client"] == "radius:gw"
    # The follow-up before the phone answered: challenged again, same number.
    kind, again = radclient(
        push, {"User-Name": "vera", "User-Password": "", "State": attrs["State"]}, timeout=10
    )
    assert kind == "Access-Challenge" and again["Reply-Message"].endswith(f": {number}"), again
    phone.run("approve", str(request["id"]), "--number", number)
    kind, _ = radclient(
        push, {"User-Name": "vera", "User-Password": "", "State": again["State"]}, timeout=10
    )
    assert kind == "Access-Accept"
    # The word "push" asks too; a wrong number ends it with a reject.
    kind, attrs = radclient(push, {"User-Name": "vera", "User-Password": "push"})
    assert kind == "Access-Challenge", attrs
    number = attrs["Reply-Message"].rsplit(": ", 1)[1]
    (request,) = phone.pending()
    wrong = "10" if number != "10" else "11"
    phone.run("approve", str(request["id"]), "--number", wrong, expect=1)
    kind, answer = radclient(
        push, {"User-Name": "vera", "User-Password": "", "State": attrs["State"]}, timeout=10
    )
    assert kind == "Access-Reject" and "declined" in answer["Reply-Message"]
    # A code still works, the same client.
    code = phone.run("code").stdout.strip()
    kind, _ = radclient(push, {"User-Name": "vera", "User-Password": code})
    assert kind == "Access-Accept"


def test_radius_after_the_password_the_default_method_decides_push_or_code(
    push: Push, tmp_path: Path
) -> None:
    """After the password: a push to the user's phone, unless the method they chose to be
    asked for first is their authenticator app, then a code challenge (no push sent)."""
    cli(push.dd, "user", "add", "wes")
    subprocess.run(
        [OPENMFA, "user", "set-password", "wes", "--password-stdin", "--data-dir", str(push.dd)],
        input="wes password\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    phone = push.phone("wes", tmp_path)
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
    added = cli(push.dd, "method", "add", "wes", "totp", "--secret", seed, "--no-qr").stdout
    app = added.split("method id:")[1].split()[0]
    sign_in = {"User-Name": "wes", "User-Password": "wes password"}
    kind, attrs = radclient(push, sign_in, source="127.0.0.5")
    assert kind == "Access-Challenge" and "Approve on your phone" in attrs["Reply-Message"]
    (request,) = phone.pending(wait=10)
    phone.run("deny", str(request["id"]))
    cli(push.dd, "user", "default", "wes", app)
    kind, attrs = radclient(push, sign_in, source="127.0.0.5")
    assert (kind, attrs["Reply-Message"]) == ("Access-Challenge", "Enter your verification code")
    assert phone.pending() == []  # nothing was sent to the phone
    code = oathtool("--totp", "-b", seed)
    kind, _ = radclient(
        push,
        {"User-Name": "wes", "User-Password": code, "State": attrs["State"]},
        source="127.0.0.5",
    )
    assert kind == "Access-Accept"


def test_radius_a_rule_that_allows_no_push_asks_for_the_code_instead(
    push: Push, tmp_path: Path
) -> None:
    """A policy rule that allows only the authenticator app: after the password, no push is
    sent and the code is asked for (the refused push counts no failure toward the lock)."""
    cli(push.dd, "user", "add", "wyn")
    subprocess.run(
        [OPENMFA, "user", "set-password", "wyn", "--password-stdin", "--data-dir", str(push.dd)],
        input="wyn password\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    phone = push.phone("wyn", tmp_path)
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXR"
    cli(push.dd, "method", "add", "wyn", "totp", "--secret", seed, "--no-qr")
    cli(push.dd, "policy", "add", "codes-only", "--channel", "radius", "--client", "gw-local",
        "--methods", "totp")  # fmt: skip
    try:
        sign_in = {"User-Name": "wyn", "User-Password": "wyn password"}
        kind, attrs = radclient(push, sign_in, source="127.0.0.5")
        assert (kind, attrs["Reply-Message"]) == (
            "Access-Challenge",
            "Enter your verification code",
        )
        assert phone.pending() == []  # nothing was sent to the phone
        kind, _ = radclient(
            push,
            {"User-Name": "wyn", "User-Password": oathtool("--totp", "-b", seed),
             "State": attrs["State"]},
            source="127.0.0.5",
        )  # fmt: skip
        assert kind == "Access-Accept"
    finally:
        cli(push.dd, "policy", "remove", "codes-only")


def test_radius_hold_answers_when_the_phone_does_and_retransmissions_push_once(
    push: Push, tmp_path: Path
) -> None:
    cli(push.dd, "user", "add", "wade")
    phone = push.phone("wade", tmp_path)
    # The gateway retransmits every 2 s while it waits: one push, one answer.
    gateway = radclient_start(
        push, {"User-Name": "wade", "User-Password": ""}, source="127.0.0.2", timeout=2, retries=10
    )
    try:
        (request,) = phone.pending(wait=10)
        wait_for(lambda: gateway.poll() is None, "radclient waits")
        assert len(phone.pending()) == 1
        # A gateway that cannot show a challenge cannot show a number either: the phone asks
        # for none (the request says so), and approving is enough.
        assert request["numbered"] is False and push_number(push, str(request["id"])) == ""
        phone.run("approve", str(request["id"]))
        out = finish(gateway)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    assert radclient_result(out)[0] == "Access-Accept", out
    assert len(phone.pending()) == 0
    # A decline: Access-Reject at once.
    gateway = radclient_start(
        push, {"User-Name": "wade", "User-Password": ""}, source="127.0.0.2", timeout=30
    )
    (request,) = phone.pending(wait=10)
    phone.run("deny", str(request["id"]))
    out = finish(gateway)
    kind, attrs = radclient_result(out)
    assert kind == "Access-Reject" and "declined" in attrs["Reply-Message"], out


def test_radius_hold_ends_in_a_reject_when_the_phone_does_not_answer(
    push: Push, tmp_path: Path
) -> None:
    cli(push.dd, "user", "add", "xena")
    push.phone("xena", tmp_path)
    kind, attrs = radclient(
        push, {"User-Name": "xena", "User-Password": ""}, source="127.0.0.3", timeout=20
    )
    assert kind == "Access-Reject" and "did not answer" in attrs["Reply-Message"], attrs
    # A client with push off never pushes: an empty password is just a wrong code.
    kind, _ = radclient(push, {"User-Name": "xena", "User-Password": ""}, source="127.0.0.4")
    assert kind == "Access-Reject"


def push_number(push: Push, push_id: str) -> str:
    """What the gateway's user sees (read from the audit trail's data file, as the test is
    the person in front of the screen): the push request's number."""
    import sqlite3

    with sqlite3.connect(push.dd / "openmfa.db") as db:
        (number,) = db.execute(
            "SELECT number FROM push_requests WHERE id = ?", (push_id,)
        ).fetchone()
    return str(number)


def test_the_mobile_service_mounted_in_serve(tmp_path: Path) -> None:
    """A single-host install: ``[mobile] enabled`` serves the mobile service inside ``openmfa
    serve`` (still through the SDK, with a key that lives in memory only)."""
    dd = tmp_path / "node"
    admin = init(dd)
    port = free_port()
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n')
    cli(dd, "user", "add", "yves")
    with server(dd, port=port) as node:
        assert httpx.get(node.url + "/mobile/v1/info").json()["protocol"] == 1
        code = json.loads(cli(dd, "device", "activate", "yves", "--json").stdout)
        phone = Phone(tmp_path / "yves.json")
        phone.run("activate", code["url"], code["code"])
        with SdkClient(node.url, admin) as sdk:
            d = sdk.authenticate("yves", push=True)
            assert d.pending is not None
            (request,) = phone.pending(wait=10)
            phone.run("approve", str(request["id"]), "--number", d.pending.number)
            assert sdk.push_outcome(d.pending.id, wait=10).accepted
        # The in-memory key is nobody's to list or revoke.
        assert "mobile (in serve)" not in cli(dd, "apikey", "list").stdout


def test_the_mobile_service_says_when_the_node_is_away_and_recovers(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    admin = init(dd)
    key = cli(dd, "apikey", "create", "mobile", "--scope", "mobile").stdout.split()[-1]
    node_port, mobile_port = free_port(), free_port()
    mobile_url = f"http://127.0.0.1:{mobile_port}/mobile"
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\npublic_url = "{mobile_url}"\n')
    cli(dd, "user", "add", "zoe")
    phone = Phone(tmp_path / "zoe.json")
    with server(dd, port=node_port) as node:
        mobile = _mobile(dd, mobile_port, node.url, key)
        try:
            code = json.loads(cli(dd, "device", "activate", "zoe", "--json").stdout)
            phone.run("activate", code["url"], code["code"])
            node.stop()
            # The node is away: the phone hears so, clearly, and nothing breaks.
            away = phone.run("pending", expect=1)
            assert "unavailable" in away.stderr and "try again" in away.stderr, away.stderr
            wait_for(
                lambda: httpx.get(mobile_url + "/healthz").json()["status"] == "degraded",
                "the mobile service notices the node is away",
            )
            with server(dd, port=node_port) as again:
                wait_for(
                    lambda: httpx.get(mobile_url + "/healthz").json()["status"] == "ok",
                    "the mobile service follows the node again",
                )
                with SdkClient(again.url, admin) as sdk:
                    d = sdk.authenticate("zoe", push=True)
                    assert d.pending is not None
                    (request,) = phone.pending(wait=10)
                    phone.run("approve", str(request["id"]), "--number", d.pending.number)
                    assert sdk.push_outcome(d.pending.id, wait=10).accepted
        finally:
            mobile.terminate()
            mobile.wait(timeout=30)


class _PushService:
    """A WebPush push service on loopback that speaks the real protocol (RFC 8030 delivery with
    an RFC 8292 VAPID header): it checks the VAPID token and keeps what it is sent."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append((dict(self.headers.items()), body))
                self.send_response(201)
                self.send_header("Location", self.path + "/m1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _vapid_claims(authorization: str) -> dict[str, object]:
    """Check an RFC 8292 ``vapid t=…, k=…`` header's ES256 token against its key; its claims."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    scheme, _, rest = authorization.partition(" ")
    assert scheme == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    token, k = parts["t"], parts["k"]
    head, claims, sig = token.split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), proto.unb64u(k))
    raw = proto.unb64u(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(proto.unb64u(head))["alg"] == "ES256"
    found: dict[str, object] = json.loads(proto.unb64u(claims))
    return found


def test_webpush_wakes_a_device_that_is_not_polling(tmp_path: Path) -> None:
    push_service = _PushService()
    dd = tmp_path / "node"
    admin = init(dd)
    key = cli(dd, "apikey", "create", "mobile", "--scope", "mobile").stdout.split()[-1]
    vapid = subprocess.run(
        [OPENMFA, "mobile", "vapid-key", str(dd / "vapid.pem")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (dd / "vapid.pem").stat().st_mode & 0o777 == 0o600 and "application server key" in vapid
    node_port, mobile_port = free_port(), free_port()
    mobile_url = f"http://127.0.0.1:{mobile_port}/mobile"
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\npublic_url = "{mobile_url}"\n')
    cli(dd, "user", "add", "ada")
    phone = Phone(tmp_path / "ada.json")
    try:
        with server(dd, port=node_port) as node:
            mobile = _mobile(
                dd,
                mobile_port,
                node.url,
                key,
                'webpush_vapid_key_file = "vapid.pem"\nwebpush_subject = "mailto:ops@example.org"'
                "\nwebpush_allow_http = true\n",
            )
            try:
                info = httpx.get(mobile_url + "/v1/info").json()
                assert info["webpush"] and info["vapid_public_key"] in vapid
                code = json.loads(cli(dd, "device", "activate", "ada", "--json").stdout)
                endpoint = push_service.url + "/push/ada-phone"
                phone.run("activate", code["url"], code["code"], "--webpush-endpoint", endpoint)
                listed = json.loads(cli(dd, "device", "list", "ada", "--json").stdout)
                assert listed[0]["webpush"] is True
                with SdkClient(node.url, admin) as sdk:
                    d = sdk.authenticate("ada", push=True)
                    assert d.pending is not None
                    wait_for(lambda: push_service.received, "the push service is sent a wake-up")
                    headers, body = push_service.received[0]
                    headers = {k.lower(): v for k, v in headers.items()}
                    assert headers["content-encoding"] == "aes128gcm"
                    assert headers["urgency"] == "high" and int(headers["ttl"]) > 0
                    claims = _vapid_claims(headers["authorization"])
                    assert claims["aud"] == push_service.url
                    assert claims["sub"] == "mailto:ops@example.org"
                    assert float(str(claims["exp"])) > time.time()
                    # Only the device can read it, and it carries only the request id.
                    env = {**os.environ, "OPENMFA_AUTHENTICATOR_STATE": str(phone.state)}
                    plain = subprocess.run(
                        [AUTHENTICATOR, "webpush-decrypt"],
                        input=body,
                        capture_output=True,
                        env=env,
                        check=True,
                    ).stdout
                    assert json.loads(plain) == {"request_id": d.pending.id}
                    assert d.pending.number.encode() not in body
                    (request,) = phone.pending()
                    phone.run("approve", str(request["id"]), "--number", d.pending.number)
                    assert sdk.push_outcome(d.pending.id, wait=10).accepted
            finally:
                mobile.terminate()
                mobile.wait(timeout=30)
    finally:
        push_service.close()


@dataclass
class PushFarm:
    """Two nodes (node-a the master, node-b a subordinate) with a RADIUS gateway (hold) on
    each, a mobile service that knows both, and one user with an activated phone."""

    a: Path
    b: Path
    admin: str
    url_a: str
    url_b: str
    udp_a: int
    udp_b: int
    master: Server
    phone: Phone
    user: str

    def radius(self, udp: int) -> subprocess.Popen[str]:
        """A push sign-in held at the gateway of the node listening on ``udp``."""
        gateway: Any = types.SimpleNamespace(radius_port=udp)
        return radclient_start(gateway, {"User-Name": self.user, "User-Password": ""}, timeout=45)


@contextmanager
def push_farm(tmp_path: Path, user: str) -> Iterator[PushFarm]:
    a, b = tmp_path / "a", tmp_path / "b"
    admin = init(a)
    port_a, port_b, mobile_port = free_port(), free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    mobile_url = f"http://127.0.0.1:{mobile_port}/mobile"
    config = (a / "server.toml").read_text().replace('node_name = ""', 'node_name = "node-a"')
    (a / "server.toml").write_text(
        config + f'\n[mobile]\npublic_url = "{mobile_url}"\nmin_gap_seconds = 0.0\n'
    )
    udp_a, udp_b = free_udp_port(), free_udp_port()
    with server(a, port=port_a, radius=f"127.0.0.1:{udp_a}") as master:
        out = cli(a, "farm", "init", "--url", url_a).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        cli(a, "user", "add", user)
        key = cli(a, "apikey", "create", "mobile", "--scope", "mobile").stdout.split()[-1]
        cli(a, "radius", "client", "add", "gw", "--address", "127.0.0.1", "--secret", SECRET,
            "--push", "hold", "--hold-seconds", "40")  # fmt: skip
        b.mkdir()
        (b / "server.toml").write_text((a / "server.toml").read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", url_a, "--token", token, "--url", url_b)
        # The mobile service knows both nodes: it follows whichever is the master.
        mobile = _mobile(a, mobile_port, f'{url_a}", "{url_b}', key)
        try:
            code = json.loads(cli(a, "device", "activate", user, "--json").stdout)
            phone = Phone(tmp_path / f"{user}.json")
            phone.run("activate", code["url"], code["code"])
            with server(b, port=port_b, radius=f"127.0.0.1:{udp_b}"):
                wait_for(
                    lambda: phone.device_id in cli(b, "device", "list", user).stdout,
                    "the device replicated to the subordinate",
                )
                yield PushFarm(a, b, admin, url_a, url_b, udp_a, udp_b, master, phone, user)
        finally:
            mobile.terminate()
            mobile.wait(timeout=30)


def test_farm_a_radius_request_held_on_a_subordinate_is_answered_through_the_master(
    tmp_path: Path,
) -> None:
    """Push requests live at the master: a subordinate's RADIUS flow opens the push there and
    waits on it; the phone answers through the master's mobile service."""
    with push_farm(tmp_path, "eve") as f:
        gateway = f.radius(f.udp_b)
        (request,) = f.phone.pending(wait=20)
        assert request["client"] == "radius:gw@node-b" and request["numbered"] is False
        f.phone.run("approve", str(request["id"]))
        kind, _ = radclient_result(finish(gateway))
        assert kind == "Access-Accept"
        # A push asked of the subordinate through the SDK goes to the master.
        with SdkClient(f.url_b, f.admin) as sdk:
            d = sdk.authenticate("eve", push=True)
            assert d.pending is not None
            assert sdk.push_outcome(d.pending.id).status == "pending"
        events = [json.loads(x) for x in cli(f.a, "audit", "--json").stdout.splitlines() if x]
        assert any(e["action"] == "push.answer" and e["result"] == "accepted" for e in events)
        assert any(e["client"] == "radius:gw@node-b" for e in events)


def test_farm_master_failover_with_an_open_push(tmp_path: Path) -> None:
    """What the README promises when the master dies with a push open: the waiting RADIUS
    request is answered Access-Reject at once (not left to time out), the person signs in again
    once a subordinate is promoted, the device activated at the old master works there, and the
    late answer to the old request is refused."""
    with push_farm(tmp_path, "fay") as f:
        held = f.radius(f.udp_b)
        (old,) = f.phone.pending(wait=20)
        f.master.proc.kill()  # the master dies with the push open
        f.master.proc.wait()
        kind, attrs = radclient_result(finish(held))
        assert kind == "Access-Reject", attrs
        assert "unavailable" in attrs.get("Reply-Message", ""), attrs
        out = cli(f.b, "farm", "promote", "node-b", "--force").stdout
        assert "node-b is the master" in out, out
        # The person signs in again at once, before node-b's farm watcher (once a second) has
        # told its authenticator: the new master pushes to the same device all the same.
        again = f.radius(f.udp_b)
        # The request died with its master: the phone no longer shows it, and a late answer is
        # refused.
        assert old["id"] not in [r["id"] for r in f.phone.pending()]
        late = f.phone.run("approve", str(old["id"]), expect=1)
        assert f"no push request {old['id']} waits" in late.stderr, late.stderr
        (request,) = f.phone.pending(wait=20)
        assert request["id"] != old["id"] and request["client"] == "radius:gw"  # local now
        f.phone.run("approve", str(request["id"]))
        kind, attrs = radclient_result(finish(again))
        assert kind == "Access-Accept", attrs
        with SdkClient(f.url_b, f.admin) as sdk:  # and through the SDK, numbered
            d = sdk.authenticate("fay", push=True)
            assert d.pending is not None
            (seen,) = f.phone.pending(wait=20)
            assert seen["id"] == d.pending.id
            f.phone.run("approve", d.pending.id, "--number", d.pending.number)
            assert sdk.push_outcome(d.pending.id, wait=10).accepted


def test_farm_a_planned_handover_carries_the_open_pushes(tmp_path: Path) -> None:
    """`farm promote` (and so every `farm upgrade`) with pushes open at the master: the new
    master adopts them, so a RADIUS request held on the old master, one held on the node that
    becomes master, and an SDK long-poll are all answered when the phone approves afterwards;
    a push answered just before a handover is still read at the new master."""
    with push_farm(tmp_path, "hal") as f:
        held = [f.radius(f.udp_a), f.radius(f.udp_b)]
        with SdkClient([f.url_a, f.url_b], f.admin) as sdk:
            d = sdk.authenticate("hal", push=True)
            assert d.pending is not None
            wait_for(lambda: len(f.phone.pending()) == 3, "three pushes open at node-a")
            # What `farm upgrade` waits for before it stops a node: its held pushes.
            for url in (f.url_a, f.url_b):
                said = farm_hello(f.a, url)
                assert said.radius is not None and said.radius.open_challenges == 1
            out = cli(f.a, "farm", "promote", "node-b").stdout
            assert "node-b is the master" in out, out
            seen = f.phone.pending()
            assert len(seen) == 3, seen  # the new master has them
            for request in seen:
                typed = ["--number", d.pending.number] if request["id"] == d.pending.id else []
                f.phone.run("approve", str(request["id"]), *typed)
            assert sdk.push_outcome(d.pending.id, wait=20).accepted
        for proc in held:
            kind, attrs = radclient_result(finish(proc))
            assert kind == "Access-Accept", attrs
        events = [json.loads(x) for x in cli(f.b, "audit", "--json").stdout.splitlines()]
        answered = [e for e in events if e["action"] == "push.answer"]
        assert len(answered) == 3, answered  # all three answered at the new master
        assert {e["node"] for e in answered} == {"node-b"}
        assert all(e["result"] == "accepted" for e in answered)
        # A push answered a moment before the next handover, its outcome not read yet: the
        # caller reads it at the new master (a handover carries just-decided requests too).
        with SdkClient(f.url_b, f.admin) as sdk:
            d = sdk.authenticate("hal", push=True)
            assert d.pending is not None
            wait_for(lambda: d.pending.id in {r["id"] for r in f.phone.pending()}, "the push")
            f.phone.run("approve", d.pending.id, "--number", d.pending.number)
        out = cli(f.b, "farm", "promote", "node-a").stdout
        assert "node-a is the master" in out, out
        with SdkClient(f.url_a, f.admin) as sdk:
            assert sdk.push_outcome(d.pending.id).accepted


def farm_hello(dd: Path, url: str) -> Any:
    """What a node tells the farm (``farm upgrade`` reads its RADIUS activity from it)."""
    from openmfa.farm import membership
    from openmfa.farm.follower import hello
    from openmfa.store.database import DataDir, Store

    store = Store.open(DataDir(dd))
    try:
        m = membership.load(store)
        assert m is not None
        said = hello(m, store.node_name, url, timeout=10)
    finally:
        store.close()
    assert said is not None
    return said


def test_a_portal_sign_in_approved_on_the_phone(push: Push, tmp_path: Path) -> None:
    """The portal's second factor as a push: password, then the number shown, typed on the
    phone, and the session token once it approved; a denied push gives no token, and another
    portal (or another user's ticket) cannot collect this one."""
    cli(push.dd, "user", "add", "pia")
    subprocess.run(
        [OPENMFA, "user", "set-password", "pia", "--password-stdin", "--data-dir", str(push.dd)],
        input="pia's long password\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    phone = push.phone("pia", tmp_path)
    key = cli(push.dd, "apikey", "create", "portal-push", "--scope", "portal").stdout.strip()
    other = cli(push.dd, "apikey", "create", "portal-other", "--scope", "portal").stdout.strip()
    with SdkClient(push.node.url, key) as portal, SdkClient(push.node.url, other) as stranger:
        ticket = portal.portal_sign_in("pia", "pia's long password").ticket
        asked = portal.portal_push(ticket)
        assert asked.reason == "pending" and asked.pending is not None and not asked.token
        assert portal.portal_push_collect(ticket, asked.pending.id).reason == "pending"
        with pytest.raises(Unauthorized):  # the ticket is this portal's
            stranger.portal_push_collect(ticket, asked.pending.id)
        (seen,) = phone.pending(wait=10)
        assert seen["id"] == asked.pending.id and seen["client"] == "portal-push"
        phone.run("approve", asked.pending.id, "--number", asked.pending.number)
        done = portal.portal_push_collect(ticket, asked.pending.id, wait=10)
        assert done.accepted and done.token
        assert portal.portal_me(done.token).user.name == "pia"
        # A denied push signs nobody in.
        again = portal.portal_push(ticket)
        assert again.pending is not None
        phone.pending(wait=10)
        phone.run("deny", again.pending.id)
        refused = portal.portal_push_collect(ticket, again.pending.id, wait=10)
        assert (refused.accepted, refused.reason, refused.token) == (False, "denied", "")


def _with_password(push: Push, user: str, password: str) -> None:
    cli(push.dd, "user", "add", user)
    subprocess.run(
        [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(push.dd)],
        input=password + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip


def test_radius_wrong_passwords_before_a_push_lock_the_user(push: Push, tmp_path: Path) -> None:
    """Issue 29: a RADIUS client that pushes after the password counts a wrong password toward
    the lockout as the portal does; once locked, the right password opens no push (it is not
    even checked) until `openmfa user unlock`."""
    _with_password(push, "lars", "lars password")
    phone = push.phone("lars", tmp_path)
    for _ in range(10):  # [policy] lockout_threshold
        kind, attrs = radclient(
            push, {"User-Name": "lars", "User-Password": "a guess"}, source="127.0.0.5"
        )
        assert kind == "Access-Reject", attrs
    sign_in = {"User-Name": "lars", "User-Password": "lars password"}
    kind, attrs = radclient(push, sign_in, source="127.0.0.5")
    assert (kind, attrs.get("Reply-Message")) == ("Access-Reject", "Verification failed"), attrs
    assert phone.pending() == []  # nothing reached the phone
    events = audit(push, "lars")
    assert events.count(("authenticate", "rejected", "wrong_password")) == 10
    assert ("lockout", "ok", "wrong_password") in events
    assert sum(e[0] == "primary" for e in events) == 10  # the right password: not checked
    cli(push.dd, "user", "unlock", "lars")
    kind, attrs = radclient(push, sign_in, source="127.0.0.5")
    assert kind == "Access-Challenge" and "Approve on your phone" in attrs["Reply-Message"]
    (request,) = phone.pending(wait=10)
    phone.run("deny", str(request["id"]))


_KEYS: dict[Path, dict[str, str]] = {}


def _keys(push: Push) -> dict[str, str]:
    """An API key of each scope that signs people in (made once per node)."""
    made = _KEYS.setdefault(push.dd, {})
    for scope in ("portal", "adapter"):
        if scope not in made:
            out = cli(push.dd, "apikey", "create", f"dmz-{scope}", "--scope", scope).stdout
            made[scope] = out.strip()
    return made


def test_a_dmz_key_cannot_push_anyone(push: Push, tmp_path: Path) -> None:
    """Issue 29: with only a portal or an adapter key, `/v1/authenticate` opens no push (a
    push follows a first factor: the portal's ticket, a RADIUS client's password; or an
    administrator's key) — not with method push, not with no code, not with the word push."""
    cli(push.dd, "user", "add", "mona")
    phone = push.phone("mona", tmp_path)
    for scope, key in _keys(push).items():
        h = {"Authorization": f"Bearer {key}"}
        for user in ("mona", "no-such-person"):
            r = httpx.post(
                push.node.url + "/v1/authenticate",
                json={"user": user, "method": "push"},
                headers=h,
                timeout=10,
            )
            assert r.status_code == 403, (scope, user, r.text)
            assert r.json()["code"] == "forbidden" and "push" in r.json()["message"]
        for body in ({"user": "mona"}, {"user": "mona", "code": "push"}):
            r = httpx.post(push.node.url + "/v1/authenticate", json=body, headers=h, timeout=10)
            assert r.status_code == 200 and r.json()["reason"] != "pending", (scope, r.text)
            assert r.json().get("pending") is None, (scope, r.text)
    assert phone.pending() == []  # nothing reached the phone
    assert not any(e[2] == "pending" for e in audit(push, "mona"))
    # An administrator's key still opens one.
    with push.sdk() as sdk:
        d = sdk.authenticate("mona", push=True)
        assert d.pending is not None
        assert [r["id"] for r in phone.pending(wait=10)] == [d.pending.id]
        phone.run("deny", d.pending.id)


def test_a_dmz_key_cannot_tell_people_apart(push: Push, tmp_path: Path) -> None:
    """Issue 29: a portal or adapter key's answers do not say whether a user exists: an
    unknown user is answered exactly as a known user with a wrong code (whatever the user has:
    an app, a phone, nothing; and whatever was sent: digits, letters, nothing)."""
    cli(push.dd, "user", "add", "nina")
    push.phone("nina", tmp_path)
    cli(push.dd, "user", "add", "otto")
    cli(push.dd, "method", "add", "otto", "totp", "--no-qr")
    cli(push.dd, "user", "add", "pete")  # no method at all
    cli(push.dd, "user", "add", "quin")
    cli(push.dd, "method", "add", "quin", "totp", "--no-qr")
    cli(push.dd, "user", "disable", "quin")

    def answer(key: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
        r = httpx.post(
            push.node.url + "/v1/authenticate",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        said = r.json()
        said.pop("request_id", None)
        return r.status_code, said

    for scope, key in _keys(push).items():
        for code in ("000000", "abcdef", ""):
            unknown = answer(key, {"user": "nobody-here", "code": code})
            assert unknown[0] == 200 and unknown[1]["accepted"] is False, unknown
            for known in ("nina", "otto", "pete", "quin"):
                body = {"user": known, "code": code}
                assert answer(key, body) == unknown, (scope, known, code, unknown)
    # The audit log still says what happened, for the administrator.
    assert ("authenticate", "rejected", "unknown_user") in audit(push, "nobody-here")
    assert ("authenticate", "rejected", "no_method") in audit(push, "pete")
    # An administrator's key is told why.
    with push.sdk() as sdk:
        assert sdk.authenticate("nobody-here", "000000").reason == "unknown_user"
        assert sdk.authenticate("pete", "000000").reason == "no_method"


def test_push_limits_hold_per_user_across_keys_and_channels(push: Push, tmp_path: Path) -> None:
    """`[mobile] open_per_user` counts a user's open pushes whoever opened them: an admin key,
    a RADIUS client, the portal's ticket; the next one is refused on every channel."""
    _with_password(push, "rosa", "rosa password")
    phone = push.phone("rosa", tmp_path)
    portal = _keys(push)["portal"]
    with push.sdk() as sdk, SdkClient(push.node.url, portal) as p:
        assert sdk.authenticate("rosa", push=True).reason == "pending"
        kind, attrs = radclient(push, {"User-Name": "rosa", "User-Password": ""})
        assert kind == "Access-Challenge", attrs
        ticket = p.portal_sign_in("rosa", "rosa password").ticket
        assert p.portal_push(ticket).reason == "pending"
        assert len(phone.pending(wait=10)) == 3
        # The fourth, on any channel: refused.
        assert sdk.authenticate("rosa", push=True).reason == "push_limited"
        assert p.portal_push(ticket).reason == "push_limited"
        kind, attrs = radclient(push, {"User-Name": "rosa", "User-Password": ""})
        assert kind == "Access-Reject" and "No push can be sent" in attrs["Reply-Message"]
        kind, attrs = radclient(
            push, {"User-Name": "rosa", "User-Password": "rosa password"}, source="127.0.0.5"
        )
        assert kind == "Access-Reject" and "No push can be sent" in attrs["Reply-Message"]
        assert len(phone.pending()) == 3
        for r in phone.pending():
            phone.run("deny", str(r["id"]))
