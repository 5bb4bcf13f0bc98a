"""``openmfa-authenticator``: a reference device. It plays the phone with the same protocol a
real app uses (``core.push``), so it is both a test peer and an example to write an app from.

    openmfa-authenticator activate https://mfa.example.org/mobile ABCDEFGHIJKLMNOP
    openmfa-authenticator activate 'https://mfa.example.org/mobile/app/#activate=ABCDEFGHIJKLMNOP'
    openmfa-authenticator pending --wait 30
    openmfa-authenticator approve p1f3... --number 42
    openmfa-authenticator deny p1f3... [--fraud]
    openmfa-authenticator code
    openmfa-authenticator watch          (stays running, as an app does; see ``watch``)

Its state (the service URL, the device id, the private key, the offline TOTP seed and the
answer counter) is one JSON file of mode 0600: ``--state`` or ``$OPENMFA_AUTHENTICATOR_STATE``,
else ``~/.openmfa-authenticator.json``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import click
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..core import push as proto
from ..core.totp import totp


class DeviceError(Exception):
    pass


class Device:
    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state
        self.key = serialization.load_pem_private_key(state["private_key"].encode(), None)

    @classmethod
    def load(cls, path: Path) -> Device:
        try:
            state = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise DeviceError(f"{path} does not exist: run `activate URL CODE` first") from None
        return cls(path, state)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.path)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.state["url"], timeout=70.0)

    def sign(self, body: dict[str, Any]) -> dict[str, str]:
        payload, signature = proto.sign_message(self.key, body)
        return {"payload": payload, "signature": signature}

    def poll(self, wait: int = 0, http: httpx.Client | None = None) -> list[dict[str, Any]]:
        """The requests waiting for this device; ``wait`` > 0 holds the poll until one comes.
        ``http``: a client kept open between calls (an app's one connection), else a new one."""
        body = {
            "v": proto.PROTOCOL,
            "op": "poll",
            "device_id": self.state["device_id"],
            "ts": int(time.time()),
            "nonce": proto.new_nonce(),
        }
        with _using(self, http) as h:
            r = h.post("/v1/poll", params={"wait": wait}, json=self.sign(body))
        requests: list[dict[str, Any]] = _answer(r)["requests"]
        return requests

    def answer(
        self,
        request_id: str,
        decision: str,
        number: str = "",
        seen: dict[str, Any] | None = None,
        http: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """Answer one request: ``seen`` is it as a poll returned it (else it is polled for)."""
        if seen is None:
            found = {r["id"]: r for r in self.poll(http=http)}
            if request_id not in found:
                raise DeviceError(f"no push request {request_id} waits for this device")
            seen = found[request_id]
        self.state["counter"] = int(self.state.get("counter", 0)) + 1
        self.save()  # before sending: a counter is never used twice
        body = {
            "v": proto.PROTOCOL,
            "op": "answer",
            "request_id": request_id,
            "nonce": seen["nonce"],
            "decision": decision,
            "number": number,
            "device_id": self.state["device_id"],
            "counter": self.state["counter"],
            "ts": int(time.time()),
        }
        with _using(self, http) as h:
            out: dict[str, Any] = _answer(h.post("/v1/answer", json=self.sign(body)))
        return out


@contextlib.contextmanager
def _using(device: Device, http: httpx.Client | None) -> Iterator[httpx.Client]:
    if http is not None:
        yield http
        return
    with device.http() as h:
        yield h


def _answer(r: httpx.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        message = body.get("message") if isinstance(body, dict) else r.text[:200]
        code = body.get("code") if isinstance(body, dict) else r.status_code
        raise DeviceError(f"refused ({code}): {message}")
    return body


def _state_path(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get("OPENMFA_AUTHENTICATOR_STATE")
    return Path(env) if env else Path.home() / ".openmfa-authenticator.json"


state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The device's state file (default $OPENMFA_AUTHENTICATOR_STATE).",
)


def _fails(fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeviceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except httpx.HTTPError as exc:
            click.echo(f"error: the mobile service could not be reached: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A reference OpenMFA device (plays the phone)."""


def activation_link(link: str) -> tuple[str, str]:
    """(service URL, code) of an activation link as its QR code carries it:
    ``https://mfa.example.org/mobile/app/#activate=CODE`` (the web app's address, the code in
    the fragment) gives ``https://mfa.example.org/mobile`` and ``CODE``."""
    parts = urlsplit(link.strip())
    code = parse_qs(parts.fragment).get("activate", [""])[0]
    if parts.scheme not in ("http", "https") or not parts.netloc or not code:
        raise DeviceError(
            "give the service URL and the code, or the whole activation link "
            "(https://…/app/#activate=CODE)"
        )
    path = parts.path.rstrip("/").removesuffix("/index.html").removesuffix("/app")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), code


@main.command()
@click.argument("url")
@click.argument("code", required=False, default="")
@click.option("--alg", type=click.Choice(proto.ALGORITHMS), default="ES256")
@click.option("--label", default="openmfa-authenticator")
@click.option(
    "--webpush-endpoint",
    default="",
    help="Also be woken by WebPush/UnifiedPush at this push-service endpoint (RFC 8030).",
)
@state_option
@_fails
def activate(
    url: str, code: str, alg: str, label: str, webpush_endpoint: str, state_path: Path | None
) -> None:
    """Activate this device with a code from `openmfa device activate` (or the portal): the
    service URL and the code, or the whole activation link its QR code carries."""
    if not code:
        url, code = activation_link(url)
    path = _state_path(state_path)
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if alg == "ES256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body: dict[str, Any] = {
        "code": code,
        "alg": alg,
        "public_key": proto.b64u(spki),
        "label": label,
    }
    receiving = ec.generate_private_key(ec.SECP256R1())  # RFC 8291: the message key pair
    auth = os.urandom(16)
    if webpush_endpoint:
        body["webpush"] = {
            "endpoint": webpush_endpoint,
            "p256dh": proto.b64u(
                receiving.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            ),
            "auth": proto.b64u(auth),
        }
    with httpx.Client(base_url=url.rstrip("/"), timeout=30.0) as h:
        done = _answer(h.post("/v1/activate", json=body))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    device = Device.__new__(Device)
    device.path, device.key = path, key
    device.state = {
        "url": url.rstrip("/"),
        "device_id": done["device_id"],
        "user": done["user"],
        "alg": alg,
        "private_key": pem,
        "totp_secret": done["totp_secret"],
        "digits": done["digits"],
        "period": done["period"],
        "counter": 0,
        "webpush_key": receiving.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "webpush_auth": proto.b64u(auth),
    }
    device.save()
    click.echo(f"activated device {done['device_id']} for {done['user']}")


@main.command()
@click.option("--wait", type=click.IntRange(0, 120), default=0, help="Seconds to wait for one.")
@click.option("--json", "as_json", is_flag=True)
@state_option
@_fails
def pending(wait: int, as_json: bool, state_path: Path | None) -> None:
    """List the push requests waiting for this device (waits up to --wait seconds for one)."""
    found = Device.load(_state_path(state_path)).poll(wait)
    if as_json:
        click.echo(json.dumps(found))
        return
    for r in found:
        left = max(0, int(r["expires_at"] - time.time()))
        where = f" from {r['source']}" if r["source"] else ""
        click.echo(f"{r['id']}  sign-in of {r['user']} at {r['client']}{where}  ({left} s left)")


@main.command()
@click.argument("request_id")
@click.option("--number", default="", help="The number shown where you are signing in.")
@state_option
@_fails
def approve(request_id: str, number: str, state_path: Path | None) -> None:
    """Approve a sign-in by typing the number it shows (a request that shows none, from a
    gateway that cannot, is approved without)."""
    out = Device.load(_state_path(state_path)).answer(request_id, "approve", number)
    click.echo(out["status"])
    if out["status"] != "accepted":
        sys.exit(1)


@main.command()
@click.argument("request_id")
@click.option("--fraud", is_flag=True, help="This wasn't me: report it (blocks further pushes).")
@state_option
@_fails
def deny(request_id: str, fraud: bool, state_path: Path | None) -> None:
    """Decline a sign-in (--fraud: report it as not yours)."""
    out = Device.load(_state_path(state_path)).answer(request_id, "fraud" if fraud else "deny")
    click.echo(out["status"])


@main.command()
@click.option(
    "--wait", type=click.IntRange(1, 60), default=50, help="Seconds each long-poll is held."
)
@state_option
@_fails
def watch(wait: int, state_path: Path | None) -> None:
    """Stay running as an app does: one connection, one long-poll always open.

    Prints one JSON line per event: {"request": {...}} for each new push request,
    {"answered": ID, "status": S} or {"answered": ID, "error": E} for each answer,
    {"unreachable": E} when the mobile service cannot be reached (it keeps trying) and
    {"reachable": true} when it can again. Reads lines on standard input: `approve ID
    [NUMBER]`, `deny ID`, `fraud ID`. Ends when standard input does.
    """
    device = Device.load(_state_path(state_path))
    lock = threading.Lock()
    shown: dict[str, dict[str, Any]] = {}  # the requests waiting, as the last poll saw them
    stop = threading.Event()

    def say(event: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    def long_poll() -> None:
        pause, away = 0.2, False
        with device.http() as h:
            while not stop.is_set():
                try:
                    found = device.poll(wait, http=h)
                except (DeviceError, httpx.HTTPError) as exc:
                    if not away:
                        say({"unreachable": str(exc)})
                    away = True
                    stop.wait(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                if away:
                    say({"reachable": True})
                pause, away = 0.2, False
                with lock:
                    new = [r for r in found if r["id"] not in shown]
                    shown.clear()
                    shown.update((r["id"], r) for r in found)
                for r in new:
                    say({"request": r})
                if found and not new:
                    # Everything waiting is on screen already: the poll would come back at
                    # once, so look again in a moment rather than spin.
                    stop.wait(0.2)

    poller = threading.Thread(target=long_poll, name="long-poll", daemon=True)
    poller.start()
    decisions = {"approve": "approve", "deny": "deny", "fraud": "fraud"}
    with device.http() as h:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] not in decisions or len(words) not in (2, 3):
                say({"error": f"not understood: {line.strip()[:80]!r}"})
                continue
            request_id, number = words[1], words[2] if len(words) == 3 else ""
            with lock:
                seen = shown.get(request_id)
            say(_answered(device, h, request_id, decisions[words[0]], number, seen))
    stop.set()


def _answered(
    device: Device,
    h: httpx.Client,
    request_id: str,
    decision: str,
    number: str,
    seen: dict[str, Any] | None,
) -> dict[str, Any]:
    for attempt in range(3):
        try:
            out = device.answer(request_id, decision, number, seen, http=h)
            return {"answered": request_id, "status": out["status"]}
        except httpx.ConnectError as exc:  # nothing was sent: sending again is safe
            if attempt == 2:
                return {"answered": request_id, "error": f"unreachable: {exc}"}
            time.sleep(0.2 * (attempt + 1))
        except (DeviceError, httpx.HTTPError) as exc:
            return {"answered": request_id, "error": str(exc)}
    raise AssertionError("unreachable")


@main.command("webpush-decrypt")
@state_option
@_fails
def webpush_decrypt(state_path: Path | None) -> None:
    """Decrypt a WebPush message (RFC 8291, aes128gcm) read from standard input, as the push
    service delivered it, and print the wake-up it carries."""
    import http_ece

    s = Device.load(_state_path(state_path)).state
    key = serialization.load_pem_private_key(s["webpush_key"].encode(), None)
    try:
        plain = http_ece.decrypt(
            sys.stdin.buffer.read(),
            private_key=key,
            auth_secret=proto.unb64u(s["webpush_auth"]),
            version="aes128gcm",
        )
    except Exception as exc:
        raise DeviceError(f"the message does not decrypt with this device's keys: {exc}") from None
    click.echo(plain.decode())


@main.command()
@state_option
@_fails
def code(state_path: Path | None) -> None:
    """Print the offline code (a TOTP code; works when push cannot reach this device)."""
    s = Device.load(_state_path(state_path)).state
    seed = base64.b32decode(s["totp_secret"] + "=" * (-len(s["totp_secret"]) % 8))
    click.echo(totp(seed, time.time(), digits=s["digits"], period=s["period"]))
