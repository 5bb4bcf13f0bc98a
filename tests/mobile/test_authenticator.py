"""``openmfa-authenticator`` (``mobile.authenticator``) in process: its state file, activation,
signed polls and answers, the offline code and WebPush decryption, against a real node and the
Mobile App Web Service served from this process (uvicorn in a thread, SQLite)."""

from __future__ import annotations

import base64
import json
import re
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click.testing
import http_ece
import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from starlette.applications import Starlette
from starlette.routing import Mount

from openmfa.core import push as proto
from openmfa.core.totp import totp
from openmfa.mobile.app import create_app as create_mobile
from openmfa.mobile.authenticator import Device, DeviceError, activation_link, main
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.sdk.app import create_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

START_SECONDS = 30.0


@dataclass
class Node:
    """A node with the mobile service mounted at ``/mobile``, served on 127.0.0.1."""

    url: str
    admin: str
    store: Store
    accounts: Accounts
    runtime: NodeRuntime

    @property
    def mobile(self) -> str:
        return self.url + "/mobile"

    def activation(self, user: str) -> str:
        self.accounts.add_user(user)
        return self.runtime.push.issue_activation(user).code

    def push(self, user: str) -> dict[str, Any]:
        """Ask ``user``'s device to approve a sign-in: the pending request (id, number)."""
        r = httpx.post(
            self.url + "/v1/authenticate",
            json={"user": user, "method": "push", "source": "198.51.100.7"},
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=10,
        )
        assert r.json()["reason"] == "pending", r.text
        pending: dict[str, Any] = r.json()["pending"]
        return pending

    def outcome(self, push_id: str) -> str:
        r = httpx.get(
            f"{self.url}/v1/authenticate/{push_id}",
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=10,
        )
        return str(r.json()["status"])


@contextmanager
def _served(app: Starlette, stop_first: Callable[[], None]) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 (a thread of this process): its
    URL once it has started; ``stop_first`` ends its long-polls before it stops."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan="on", log_level="warning", ws="none", timeout_graceful_shutdown=5
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the node did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_first()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    config = make_config(mobile={"min_gap_seconds": 0.0})  # one push right after another
    store = Store.create(DataDir(tmp_path_factory.mktemp("authenticator") / "node"), config)
    runtime = NodeRuntime(store, config, radius_listen="")
    mounted: list[Starlette] = []

    @asynccontextmanager
    async def running(_: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            async with mounted[0].router.lifespan_context(mounted[0]):
                yield
        finally:
            await runtime.stop()

    app = create_app(runtime, lifespan=running)
    key = runtime.keyring.internal("mobile (test)", "mobile")
    mobile = create_mobile(
        ["http://node.internal"], key, prefix="", transport=httpx.ASGITransport(app=app)
    )
    mounted.append(mobile)
    app.router.routes.append(Mount("/mobile", app=mobile))
    admin = ApiKeys(store).create("admin", "admin")
    try:
        with _served(app, runtime.push_hub.close) as url:
            yield Node(url, admin, store, Accounts(store, config), runtime)
    finally:
        store.close()


def run(*args: str, input: str | None = None) -> click.testing.Result:
    return click.testing.CliRunner().invoke(main, list(args), input=input)


def activated(node: Node, user: str, tmp_path: Path, alg: str = "ES256") -> Path:
    path = tmp_path / f"{user}.json"
    out = run("activate", node.mobile, node.activation(user), "--alg", alg, "--state", str(path))
    assert out.exit_code == 0, out.output
    return path


def test_activation_writes_a_private_state_file(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "dana.json"
    code = node.activation("dana")
    out = run("activate", node.mobile + "/", code, "--label", "desk", "--state", str(path))
    assert out.exit_code == 0, out.output
    state = json.loads(path.read_text())
    assert out.output == f"activated device {state['device_id']} for dana\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_suffix(".tmp").exists()
    assert (state["url"], state["user"], state["alg"], state["counter"]) == (
        node.mobile,
        "dana",
        "ES256",
        0,
    )
    key = serialization.load_pem_private_key(state["private_key"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # The node holds the device's public key: a device list names it.
    (method,) = [m for m in node.accounts.list_methods("dana") if m.kind == "push"]
    assert method.label == "desk"
    # The code is single-use: a second activation with it is refused, nothing written.
    again = tmp_path / "again.json"
    out = run("activate", node.mobile, code, "--state", str(again))
    assert out.exit_code == 1 and out.output.startswith("error: refused (")
    assert not again.exists()


def test_activation_with_the_link_the_qr_code_carries(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "lena.json"
    link = f"{node.mobile}/app/#activate={node.activation('lena')}"
    out = run("activate", link, "--state", str(path))
    assert out.exit_code == 0, out.output
    assert json.loads(path.read_text())["url"] == node.mobile
    out = run("activate", node.mobile + "/app/", "--state", str(tmp_path / "x.json"))
    assert out.exit_code == 1 and "the whole activation link" in out.output


@pytest.mark.parametrize(
    ("link", "url"),
    [
        ("https://mfa.example.org/mobile/app/#activate=ABCD", "https://mfa.example.org/mobile"),
        ("https://mfa.example.org/mobile/app#activate=ABCD", "https://mfa.example.org/mobile"),
        ("http://h:8490/app/index.html#activate=ABCD&x=1", "http://h:8490"),
        (" https://h/m/app/#activate=ABCD\n", "https://h/m"),
    ],
)
def test_an_activation_link_names_the_service_and_the_code(link: str, url: str) -> None:
    assert activation_link(link) == (url, "ABCD")


@pytest.mark.parametrize(
    "link", ["https://h/m/app/", "https://h/m/app/#activate=", "openmfa://activate?code=A"]
)
def test_what_is_not_an_activation_link_is_refused(link: str) -> None:
    with pytest.raises(DeviceError, match="activation link"):
        activation_link(link)


def test_the_offline_code_is_the_seeds_totp(node: Node, tmp_path: Path) -> None:
    path = activated(node, "olga", tmp_path, alg="EdDSA")
    state = json.loads(path.read_text())
    seed = base64.b32decode(state["totp_secret"] + "=" * (-len(state["totp_secret"]) % 8))
    before = time.time()
    shown = run("code", "--state", str(path)).output.strip()
    after = time.time()
    expected = {
        totp(seed, at, digits=state["digits"], period=state["period"]) for at in (before, after)
    }
    assert shown in expected and len(shown) == state["digits"]


def test_a_push_is_listed_then_approved_with_its_number(node: Node, tmp_path: Path) -> None:
    path = activated(node, "paula", tmp_path)
    pending = node.push("paula")
    device = Device.load(path)
    (seen,) = device.poll(wait=5)
    assert (seen["id"], seen["user"], seen["source"]) == (pending["id"], "paula", "198.51.100.7")
    assert "number" not in seen  # the phone is told the context, never the number
    listed = json.loads(run("pending", "--json", "--state", str(path)).output)
    assert [r["id"] for r in listed] == [pending["id"]]
    text = run("pending", "--state", str(path)).output
    assert text.startswith(f"{pending['id']}  sign-in of paula at admin from 198.51.100.7  (")
    out = run("approve", pending["id"], "--number", pending["number"], "--state", str(path))
    assert (out.exit_code, out.output) == (0, "accepted\n")
    assert node.outcome(pending["id"]) == "accepted"
    assert json.loads(path.read_text())["counter"] == 1
    out = run("approve", pending["id"], "--number", pending["number"], "--state", str(path))
    assert out.exit_code == 1 and "no push request" in out.output


def test_a_wrong_number_and_a_denial(node: Node, tmp_path: Path) -> None:
    path = activated(node, "wim", tmp_path)
    first = node.push("wim")
    wrong = "10" if first["number"] != "10" else "11"
    out = run("approve", first["id"], "--number", wrong, "--state", str(path))
    assert (out.exit_code, out.output) == (1, "denied\n")
    assert node.outcome(first["id"]) == "denied"
    second = node.push("wim")
    out = run("deny", second["id"], "--state", str(path))
    assert (out.exit_code, out.output) == (0, "denied\n")
    assert node.outcome(second["id"]) == "denied"
    third = node.push("wim")
    out = run("deny", third["id"], "--fraud", "--state", str(path))
    assert out.exit_code == 0 and node.outcome(third["id"]) == out.output.strip() != "accepted"
    assert json.loads(path.read_text())["counter"] == 3
    events = audit.query(node.store, user="wim", actions=("push.answer",))
    assert [e.reason for e in events] == ["wrong_number", "declined", "fraud"]


def test_the_counter_is_saved_before_an_answer_is_sent(node: Node, tmp_path: Path) -> None:
    """A counter is never used twice: it is on disk even when the answer never arrives."""
    path = activated(node, "carl", tmp_path)
    device = Device.load(path)
    device.state["url"] = "http://127.0.0.1:9"  # nothing listens (discard)
    seen = {"id": "p-none", "nonce": "n" * 22}
    with pytest.raises(httpx.ConnectError):
        device.answer("p-none", "approve", seen=seen)
    assert json.loads(path.read_text())["counter"] == 1
    device.save()
    out = run("approve", "p-none", "--state", str(path))
    assert out.exit_code == 1 and "could not be reached" in out.output


def test_a_forged_or_unknown_device_is_refused(node: Node, tmp_path: Path) -> None:
    path = activated(node, "fred", tmp_path)
    device = Device.load(path)
    device.key = ec.generate_private_key(ec.SECP256R1())  # not the key the node holds
    with pytest.raises(DeviceError, match=r"refused \("):
        device.poll()
    state = json.loads(path.read_text())
    state["device_id"] = "d-unknown"
    path.write_text(json.dumps(state))
    out = run("pending", "--state", str(path))
    assert out.exit_code == 1 and out.output.startswith("error: refused (")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_signed_messages_verify_with_the_devices_public_key(alg: str, tmp_path: Path) -> None:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if alg == "ES256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    device = Device(tmp_path / "d.json", {"private_key": pem})
    body = {"v": proto.PROTOCOL, "op": "poll", "device_id": "d1", "ts": 1, "nonce": "n" * 22}
    signed = device.sign(body)
    message = proto.Signed.decode(signed["payload"], signed["signature"], "poll")
    assert message.body == body
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = proto.DeviceKey.load(alg, spki)
    assert public.verify(message.raw, message.signature)
    assert not public.verify(message.raw + b" ", message.signature)


def test_where_the_state_file_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OPENMFA_AUTHENTICATOR_STATE", raising=False)
    out = run("code")
    assert out.exit_code == 1
    assert out.output == (
        f"error: {tmp_path / '.openmfa-authenticator.json'} does not exist: "
        "run `activate URL CODE` first\n"
    )
    monkeypatch.setenv("OPENMFA_AUTHENTICATOR_STATE", str(tmp_path / "env.json"))
    assert f"{tmp_path / 'env.json'} does not exist" in run("code").output
    given = tmp_path / "given.json"
    assert f"{given} does not exist" in run("code", "--state", str(given)).output
    with pytest.raises(DeviceError, match="does not exist"):
        Device.load(given)


def test_a_webpush_message_decrypts_with_the_devices_keys(node: Node, tmp_path: Path) -> None:
    """RFC 8291: what a push service delivers, encrypted to the keys the device registered."""
    path = tmp_path / "wendy.json"
    out = run(
        "activate",
        node.mobile,
        node.activation("wendy"),
        "--webpush-endpoint",
        "https://push.example.org/w/1",
        "--state",
        str(path),
    )
    assert out.exit_code == 0, out.output
    state = json.loads(path.read_text())
    receiving = serialization.load_pem_private_key(state["webpush_key"].encode(), None)
    assert isinstance(receiving, ec.EllipticCurvePrivateKey)
    sender = ec.generate_private_key(ec.SECP256R1())
    wake = b'{"wake": true}'
    sealed = http_ece.encrypt(
        wake,
        private_key=sender,
        dh=receiving.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
        auth_secret=proto.unb64u(state["webpush_auth"]),
        version="aes128gcm",
    )
    out = click.testing.CliRunner().invoke(
        main, ["webpush-decrypt", "--state", str(path)], input=sealed
    )
    assert (out.exit_code, out.output) == (0, wake.decode() + "\n")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    out = click.testing.CliRunner().invoke(
        main, ["webpush-decrypt", "--state", str(path)], input=tampered
    )
    assert out.exit_code == 1 and "does not decrypt with this device's keys" in out.output


def test_watch_shows_requests_and_answers_the_lines_it_reads(node: Node, tmp_path: Path) -> None:
    path = activated(node, "ulla", tmp_path)
    pending = node.push("ulla")
    lines = f"hello\n\napprove {pending['id']} {pending['number']}\napprove {pending['id']}\n"
    out = run("watch", "--wait", "1", "--state", str(path), input=lines)
    for thread in threading.enumerate():
        if thread.name == "long-poll":
            thread.join(timeout=10)  # its last poll ends within --wait
    assert out.exit_code == 0, out.output
    events = [json.loads(line) for line in out.output.splitlines()]
    answers = [e for e in events if "answered" in e or "error" in e]
    assert answers[0] == {"error": "not understood: 'hello'"}
    assert answers[1] == {"answered": pending["id"], "status": "accepted"}
    # Answered once: refused, whether the poll still showed it (sent and refused) or not.
    assert answers[2]["answered"] == pending["id"]
    assert re.search("no push request|already accepted", answers[2]["error"]), answers[2]
    assert len(answers) == 3 and node.outcome(pending["id"]) == "accepted"
    assert all(e["request"]["id"] == pending["id"] for e in events if "request" in e)
