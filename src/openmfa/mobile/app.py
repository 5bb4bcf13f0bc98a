"""The Mobile App Web Service: what phones talk to, in a DMZ, with no database credentials.

Every call goes to the nodes through the SDK's async client with a ``mobile``-scoped key; the
node checks every signature (it holds the devices' public keys). This service adds what a node
should not do for thousands of phones: it holds their long-polls, and it wakes the ones a new
push request is for — told by one long-poll of its own on the node (``GET /v1/push/events``).

Routes (under the configured prefix, ``/mobile`` by default; the device protocol is in the
README and ``openmfa.core.push``):

    GET  {prefix}/v1/info       the protocol version and key algorithms this service takes
    POST {prefix}/v1/activate   {code, alg, public_key, label?, webpush?} -> the device's id
    POST {prefix}/v1/poll?wait=N  a signed poll -> the requests waiting for the device's user
    POST {prefix}/v1/answer     a signed answer -> where the request stands
    GET  {prefix}/v1/openapi.json  this list as an OpenAPI 3.1 document (``mobile.openapi``)
    GET  {prefix}/app/          the OpenMFA Authenticator web app (``mobile.webapp_routes``)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import msgspec
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core import push as proto
from ..errors import (
    DeviceRefused,
    InvalidInput,
    MalformedRequest,
    OpenMfaError,
    PayloadTooLarge,
    PushClosed,
    Unavailable,
)
from ..metrics import BuildInfo, RequestCounter, install_journal
from ..metrics import endpoint as metrics_endpoint
from ..sdk.client import AsyncSdkClient
from ..sdk.models import (
    DeviceActivate,
    DevicePoll,
    ErrorBody,
    PushRequestView,
    SignedMessage,
    WebPushSubscription,
)
from .openapi import document
from .providers import Delivered, Gone, PushProvider
from .webapp_routes import WebApp

log = logging.getLogger("openmfa.mobile")
_encode = msgspec.json.Encoder().encode
MAX_BODY = 8192


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


class DeviceWaiters:
    """Devices whose poll is held, by device id; woken with the requests opened for them."""

    def __init__(self) -> None:
        self._held: dict[str, set[asyncio.Future[list[PushRequestView]]]] = {}

    def wake(self, device_id: str, requests: list[PushRequestView]) -> bool:
        """True when a held poll of the device took the requests."""
        woken = False
        for fut in self._held.pop(device_id, set()):
            if not fut.done():
                fut.set_result(requests)
                woken = True
        return woken

    async def wait(self, device_id: str, seconds: float) -> list[PushRequestView]:
        fut: asyncio.Future[list[PushRequestView]] = asyncio.get_running_loop().create_future()
        self._held.setdefault(device_id, set()).add(fut)
        try:
            return await asyncio.wait_for(fut, seconds)
        except TimeoutError:
            return []
        finally:
            held = self._held.get(device_id)
            if held is not None:
                held.discard(fut)
                if not held:
                    del self._held[device_id]

    def count(self) -> int:
        return sum(len(v) for v in self._held.values())

    def release_all(self) -> None:
        """Answer every held poll now, with nothing (the service is stopping: a phone polls
        again, elsewhere or after the restart, rather than hold the shutdown)."""
        for held in list(self._held.values()):
            for fut in list(held):
                if not fut.done():
                    fut.set_result([])


class DeviceBook:
    """What this service knows of devices and open requests, so that a device's next polls cost
    the node nothing: the key the node vouched for at the device's last poll it checked (kept
    ``TRUST_SECONDS``; then the node checks again, and a revoked device is refused), and the
    open requests the node announced (until they expire or are answered through here). Answers
    always go to the node, which checks them itself."""

    TRUST_SECONDS = 300.0

    def __init__(self) -> None:
        self._keys: dict[str, tuple[proto.DeviceKey, float]] = {}
        self._open: dict[str, PushRequestView] = {}
        self._by_device: dict[str, set[str]] = {}
        self._nonces: dict[str, float] = {}

    def vouched(self, poll: DevicePoll) -> None:
        """The node checked a poll: its key is trusted for a while, and the requests the node
        listed are exactly the device's open ones (the node's word replaces what was kept)."""
        if poll.public_key:
            key = proto.DeviceKey(poll.alg, proto.unb64u(poll.public_key))
            self._keys[poll.device_id] = (key, time.monotonic() + self.TRUST_SECONDS)
        for push_id in self._by_device.pop(poll.device_id, set()):
            self._open.pop(push_id, None)
        for r in poll.requests:
            self.opened(r, [poll.device_id])

    def forget(self) -> None:
        """The events came from another run of the master (a restart, or another node after a
        failover): nothing kept is known to hold there, so every device's next poll goes to the
        node again. (Used nonces are kept: they stay used.)"""
        self._keys.clear()
        self._open.clear()
        self._by_device.clear()

    def check(self, payload: str, signature: str) -> str | None:
        """The device id of a poll this service can check itself, or None (ask the node).
        Raises DeviceRefused for a poll that is certainly wrong."""
        try:
            signed = proto.Signed.decode(payload, signature, "poll")
        except proto.ProtocolError:
            return None  # the node says what is wrong with it
        known = self._keys.get(signed.device_id)
        now = time.monotonic()
        if known is None or known[1] < now:
            return None
        if not known[0].verify(signed.raw, signed.signature):
            return None
        if abs(int(signed.body["ts"]) - time.time()) > 300:
            return None
        nonce = signed.device_id + ":" + str(signed.body["nonce"])
        if nonce in self._nonces:
            raise DeviceRefused("this poll was sent before (its nonce is used); sign a new one")
        if len(self._nonces) > 500_000:
            self._nonces = {k: v for k, v in self._nonces.items() if v > now}
        self._nonces[nonce] = now + 600
        return signed.device_id

    def opened(self, request: PushRequestView, devices: list[str]) -> None:
        self._open[request.id] = request
        for d in devices:
            self._by_device.setdefault(d, set()).add(request.id)

    def closed(self, push_id: str) -> None:
        self._open.pop(push_id, None)

    def waiting(self, device_id: str) -> list[PushRequestView]:
        ids = self._by_device.get(device_id)
        if not ids:
            return []
        now = time.time()
        found = []
        for push_id in list(ids):
            r = self._open.get(push_id)
            if r is None or r.expires_at <= now:
                ids.discard(push_id)
                self._open.pop(push_id, None)
            else:
                found.append(r)
        return sorted(found, key=lambda r: r.created_at)


class EventPump:
    """One long-poll on the nodes' new push requests; wakes the devices they are for."""

    def __init__(
        self,
        sdk: AsyncSdkClient,
        waiters: DeviceWaiters,
        webpush: PushProvider | None = None,
        book: DeviceBook | None = None,
    ) -> None:
        self.sdk = sdk
        self.waiters = waiters
        self.book = book or DeviceBook()
        self.webpush = webpush
        self._sending: set[asyncio.Task[None]] = set()
        self.boot = ""
        self.after = 0
        self.up = False

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                got = await self.sdk.push_events(self.boot, self.after, wait=25)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node is away: say so once, try again, back off
                if self.up or delay == 0.2:
                    log.warning("cannot reach the nodes for push events: %s", exc)
                self.up = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if not self.up:
                log.info("receiving push events from the nodes")
            self.up, delay = True, 0.2
            if got.boot != self.boot:
                # A node's restart, or a new master: only events of its run matter (they are
                # all replayed), and nothing kept from another run can be trusted.
                self.boot, self.after = got.boot, 0
                self.book.forget()
            # A request opened and answered within one batch (all of a node's kept events, for
            # a service that just started) is not open: it is neither kept nor woken for.
            closed = set(got.closed)
            for push_id in closed:
                self.book.closed(push_id)
            for event in got.events:
                if event.seq > self.after and event.request.id not in closed:
                    self.book.opened(event.request, event.devices)
                    for device_id in event.devices:
                        if self.waiters.wake(device_id, [event.request]):
                            continue  # its held poll has it (the long-poll channel)
                        sub = event.webpush.get(device_id)
                        if sub is not None and self.webpush is not None:
                            task = asyncio.create_task(self._wake(device_id, sub, event.request))
                            self._sending.add(task)
                            task.add_done_callback(self._sending.discard)
            self.after = max(self.after, got.seq)

    async def _wake(
        self, device_id: str, sub: WebPushSubscription, request: PushRequestView
    ) -> None:
        assert self.webpush is not None
        sent = await self.webpush.send(device_id, sub, {"request_id": request.id})
        if isinstance(sent, Gone):
            log.warning("device %s cannot be woken by WebPush: %s", device_id, sent.why)
        elif not isinstance(sent, Delivered):
            log.warning(
                "WebPush to device %s failed (%s); it still gets the request when it polls",
                device_id,
                sent.why,
            )


async def _body(request: Request, kind: type[Any]) -> Any:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
    try:
        return msgspec.json.decode(bytes(data), type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the request body is not valid: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from None


def create_app(
    nodes: list[str],
    api_key: str,
    *,
    prefix: str = "/mobile",
    long_poll_seconds: float = 50.0,
    verify: Any = True,
    transport: Any = None,
    webpush: PushProvider | None = None,
    webapp: WebApp | None = None,
) -> Starlette:
    """``prefix`` "" serves the routes at the root (to be mounted under a prefix elsewhere);
    ``transport`` reaches a node of the same process (``openmfa serve`` with ``[mobile]
    enabled``); ``webapp`` the Authenticator web app's files (else the packaged ones)."""
    web = webapp if webapp is not None else WebApp()
    sdk = AsyncSdkClient(nodes, api_key, timeout=15.0, verify=verify, transport=transport)
    waiters = DeviceWaiters()
    book = DeviceBook()
    pump = EventPump(sdk, waiters, webpush, book)

    async def info(request: Request) -> Response:
        return _json(
            {
                "service": "openmfa-mobile",
                "version": web.version,
                "protocol": proto.PROTOCOL,
                "algorithms": list(proto.ALGORITHMS),
                "prefix": prefix,
                "events": pump.up,
                "webpush": webpush is not None,
                "vapid_public_key": webpush.public_key if webpush is not None else "",
            }
        )

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok" if pump.up else "degraded", "held": waiters.count()})

    async def activate(request: Request) -> Response:
        b: DeviceActivate = await _body(request, DeviceActivate)
        done = await sdk.activate_device(
            b.code, b.alg, b.public_key, label=b.label, webpush=b.webpush, unlock=b.unlock
        )
        return _json(done, 201)

    async def poll(request: Request) -> Response:
        wait = _wait(request.query_params.get("wait", "0"))
        b: SignedMessage = await _body(request, SignedMessage)
        return _json(await polled(b, wait))

    def _wait(raw: str) -> float:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
            raise InvalidInput("wait must be a whole number of seconds")
        return min(float(raw), long_poll_seconds)

    async def polled(b: SignedMessage, wait: float) -> DevicePoll:
        device_id = book.check(b.payload, b.signature) if pump.up else None
        if device_id is None:  # not known here (or not for long enough): the node checks it
            found: DevicePoll = await sdk.poll_device(b.payload, b.signature)
            book.vouched(found)
            device_id = found.device_id
        waiting = book.waiting(device_id)
        if not waiting and wait > 0:
            waiting = await waiters.wait(device_id, wait)
        return DevicePoll(device_id=device_id, requests=waiting)

    async def poll_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        """``POST …/v1/poll`` without the router, request object and middleware: what ten
        thousand phones hold open at once costs less per phone (``bench/push.py``)."""
        try:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            wait = _wait(query.get("wait", ["0"])[-1])
            data = b""
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                data += message.get("body", b"")
                if len(data) > MAX_BODY:
                    raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
                if not message.get("more_body", False):
                    break
            try:
                b = msgspec.json.decode(data, type=SignedMessage)
            except msgspec.ValidationError as exc:
                raise InvalidInput(f"the request body is not valid: {exc}") from None
            except msgspec.DecodeError as exc:
                raise MalformedRequest(f"the request body is not valid JSON: {exc}") from None
            body, status = _encode(await polled(b, wait)), 200
        except OpenMfaError as exc:
            body, status = _error_body(exc)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def answer(request: Request) -> Response:
        b: SignedMessage = await _body(request, SignedMessage)
        try:
            outcome = await sdk.answer_push(b.payload, b.signature, b.unlock)
        except PushClosed:
            _forget(b.payload)
            raise
        book.closed(outcome.id)
        return _json(outcome)

    def _forget(payload: str) -> None:
        with contextlib.suppress(proto.ProtocolError):
            book.closed(str(proto.parse(proto.unb64u(payload)).get("request_id")))

    async def error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenMfaError)
        body, status = _error_body(exc)
        return Response(body, status_code=status, media_type="application/json")

    async def openapi(request: Request) -> Response:
        return _json(document(prefix, int(long_poll_seconds)))

    routes = [
        Route("/healthz", healthz),
        Route("/v1/openapi.json", openapi),
        Route("/v1/info", info),
        Route("/v1/activate", activate, methods=["POST"]),
        Route("/v1/poll", poll, methods=["POST"]),
        Route("/v1/answer", answer, methods=["POST"]),
        *web.routes(),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(pump.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sdk.aclose()

    registry = CollectorRegistry(auto_describe=True)
    registry.register(BuildInfo("mobile", install_journal()))

    async def metrics(request: Request) -> Response:
        return metrics_endpoint(registry)

    app = Starlette(
        routes=[Route("/metrics", metrics), Mount(prefix, routes=routes)] if prefix else routes,
        lifespan=lifespan,
        exception_handlers={OpenMfaError: error},
        middleware=[Middleware(RequestCounter, registry=registry, part="mobile")] if prefix else [],
    )
    app.state.waiters = waiters
    app.state.pump = pump
    app.state.poll = poll_asgi
    return app


def _error_body(exc: OpenMfaError) -> tuple[bytes, int]:
    if isinstance(exc, Unavailable):
        log.warning("nodes unreachable: %s", exc.message)
        body = ErrorBody(
            code="unavailable",
            message="the MFA server cannot be reached right now; try again in a moment",
        )
        return _encode(body), 503
    status = exc.http_status if 400 <= exc.http_status < 600 else 500
    return _encode(ErrorBody(code=exc.code, message=exc.message)), status


class Standalone:
    """The service as ``openmfa mobile serve`` runs it: phones' polls go straight to their
    lean endpoint, everything else (and the lifespan) to the app."""

    def __init__(self, app: Starlette, prefix: str) -> None:
        self.app = app
        self.poll_path = prefix + "/v1/poll"
        self.poll: ASGIApp = app.state.poll

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == self.poll_path
            and scope["method"] == "POST"
        ):
            await self.poll(scope, receive, send)
            return
        await self.app(scope, receive, send)
