"""Sign-ins: ``POST /v1/authenticate`` (the hot path, a plain ASGI endpoint), where a push
request stands, and an identity provider's REST second factor.
"""

from __future__ import annotations

import logging
import time

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ...core.verification import Decision, Reason
from ...errors import (
    InvalidInput,
    MalformedRequest,
    NotMaster,
    NotReady,
    OpenMfaError,
    PayloadTooLarge,
    RequestError,
)
from ...farm.push_relay import wait_outcome
from ...node import pins
from ...node.apikeys import ApiClient
from ...node.authenticator import Attempt
from ...node.push_sign_in import decide_push
from ...wiring import NodeRuntime
from ..http import (
    _authorize,
    _basic_key,
    _body,
    _encode,
    _int_param,
    _node,
    _run,
    _token,
    json_response,
)
from ..models import (
    NAME_RE,
    TEXT_RE,
    AdapterResult,
    AdapterVerify,
    AuthenticateRequest,
    DecisionView,
    ErrorBody,
    PendingPush,
    PushOutcome,
)
from ..table import WAIT, Declared

log = logging.getLogger("openmfa.sdk")


class Authenticate:
    """``POST /v1/authenticate`` as a plain ASGI endpoint: the hot path of every sign-in.

    It does what every route does, in the same order — the caller's key checked before the body
    is read, the body's limits, the document's patterns, errors as ``{"code", "message",
    "request_id"}`` — without the router, the request and response objects and the exception
    middleware around them, which on CPython cost more than the decision itself
    (``bench/verify.py``). ``RequestIds`` hands it its requests; it is also the route's
    endpoint, so the router and the OpenAPI document know the path."""

    def __init__(self, node: NodeRuntime) -> None:
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid: str = scope["state"]["request_id"]
        try:
            body = _encode(await self._decide(scope, receive, rid))
            status = 200
        except OpenMfaError as exc:
            if not isinstance(exc, RequestError | NotReady):
                log.error("%s: %s", exc.code, exc.message)
            err = ErrorBody(code=exc.code, message=exc.message, request_id=rid)
            if isinstance(exc, NotMaster) and exc.master_url:
                err.master_url = exc.master_url
            body, status = _encode(err), exc.http_status
        except Exception:
            log.exception("internal error on POST /v1/authenticate")
            body, status = (
                _encode(ErrorBody(code="internal_error", message=_CRASH, request_id=rid)),
                500,
            )
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

    async def _decide(self, scope: Scope, receive: Receive, rid: str) -> DecisionView:
        node = self.node
        token: str | None = None
        length: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and rest.strip():
                    token = rest.strip()
            elif key == b"content-length":
                length = value
        client = node.keyring.recent(token, time.time())
        if client is None:
            client = await run_in_threadpool(node.client, token, "authenticate")
        else:
            client.require("authenticate")
        limit = node.max_body
        if length is not None:
            if not (length.isascii() and length.isdigit() and len(length) <= 18):
                raise MalformedRequest("the Content-Length header is not a number")
            if int(length) > limit:
                raise PayloadTooLarge(
                    f"the body is {int(length)} bytes; the limit is {limit} bytes"
                )
        data = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MalformedRequest("the client went away before its body arrived")
            data += message.get("body", b"")
            if len(data) > limit:
                raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
            if not message.get("more_body", False):
                break
        try:
            b = _decode_authenticate(data)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"the request body is not valid: {exc}") from None
        except msgspec.DecodeError as exc:
            raise MalformedRequest(f"the request body is not valid JSON: {exc}") from None
        if NAME_RE.fullmatch(b.user) is None:  # no such user can exist (models.NAME_PATTERN)
            raise InvalidInput("user is not a user name: printable, no '/', not blank")
        code = b.code
        if b.source and TEXT_RE.fullmatch(b.source) is None:
            raise InvalidInput("source must be printable text (an address)")
        if b.method == "push":
            client.require_push()  # 403 before anything about the user is looked at
            if code:
                raise InvalidInput("send no code with method push (the phone answers instead)")
            code = "push"
        attempt = Attempt(
            b.user,
            code,
            client=client.name,
            request_id=rid,
            token=token,
            source=b.source,
            push=client.may("push"),  # a DMZ key's empty code or "push" opens none either
            neutral=client.neutral,
            channel="sdk",
            channel_client=client.name,
            network=b.source if client.asserts_source else "",  # only a key marked for it
            skippable=True,
        )
        # At the master, or not_master (the client asks the master); a node promoted a moment
        # ago decides again (node.push_sign_in, the one retry).
        result = await decide_push(
            node.queue, attempt, node.push, here=True, asked=b.method == "push"
        )
        if isinstance(result, Decision) and result.reason is Reason.PIN_NEEDED:
            # A rule wants the PIN typed before the code: checked off the commit thread.
            attempt = await pins.checked(node.store, attempt)
            result = await decide_push(node.queue, attempt, node.push, here=True)
        if isinstance(result, OpenMfaError):
            raise result
        d: Decision = result
        view = DecisionView(
            accepted=d.accepted,
            reason=str(d.reason),
            method_id=d.method_id,
            locked_until=d.locked_until,
            request_id=rid,
        )
        if d.pending is not None:
            push_id, number, expires = d.pending
            view.pending = PendingPush(id=push_id, number=number, expires_at=expires)
        return view


_decode_authenticate = msgspec.json.Decoder(AuthenticateRequest).decode


_CRASH = "the node failed to handle this request; its log has the details under this request id"


async def push_outcome(request: Request) -> Response:
    """Where a push request stands; ``?wait=N`` holds the answer up to N seconds (at most 60)
    until the phone answers or the request expires."""
    node = _node(request)
    push_id = request.path_params["push_id"]
    wait = _int_param(request, "wait", 0, 0, 60)
    client = await _authorize(request, "authenticate")
    outcome = await _run(client, lambda c: node.push.outcome(push_id, c.name))  # the caller's?
    if outcome.status == "pending" and wait:
        # Still pending when this node hands the master's role over: the caller asks again
        # and is sent to the new master (not_master), which has the request now.
        outcome = await wait_outcome(node.push, node.push_hub, node.store, push_id, wait)
    return json_response(outcome)


async def adapter_verify(request: Request) -> Response:
    """An identity provider's REST second factor (LemonLDAP::NG ``rest2fVerifyUrl``): the user
    and the code they typed -> HTTP 200 with ``{"result": true|false}``; policy rules of the
    ``lemonldap`` channel apply (no source network: the call does not carry the browser's).
    An ``adapter`` key, as a Bearer token or HTTP Basic's password. A wrong code, an unknown or
    locked user, a code that cannot be one: ``result: false`` (counted toward the lockout like
    any); a refused key or a node that cannot decide: an error status, on which the identity
    provider fails closed."""
    node = _node(request)
    token = _basic_key(request) or _token(request)
    client: ApiClient = await run_in_threadpool(node.client, token, "adapter")
    b = await _body(request, AdapterVerify, node.max_body)
    code = b.code.strip().replace(" ", "").replace("-", "")  # as typed: 04551-21019
    if NAME_RE.fullmatch(b.user) is None or not code or TEXT_RE.fullmatch(code) is None:
        return json_response(AdapterResult(result=False))  # no such user, or no code typed
    attempt = Attempt(
        b.user,
        code,
        client=client.name,
        request_id=request.state.request_id,
        token=token,
        push=False,
        channel="lemonldap",  # policy rules: the channel, the adapter key's name as its client
        channel_client=client.name,
    )
    result = await node.queue.submit(attempt)
    if isinstance(result, Decision) and result.reason is Reason.PIN_NEEDED:
        result = await node.queue.submit(await pins.checked(node.store, attempt))
    if isinstance(result, OpenMfaError):
        raise result
    return json_response(AdapterResult(result=result.accepted))


ROUTES: list[Declared] = [
    Declared(
        "POST",
        "/v1/authenticate",
        "authenticate",
        "Check a user's code; `method: push` opens a push and needs an admin key (permission "
        "push). For portal and adapter keys an unknown, disabled or methodless user gets a "
        "wrong code's answer",
        AuthenticateRequest,
        DecisionView,
        200,
        Authenticate,
    ),
    Declared(
        "GET",
        "/v1/authenticate/{push_id}",
        "authenticate",
        "Where a push request stands (?wait=N holds the answer until the phone answers)",
        None,
        PushOutcome,
        200,
        push_outcome,
        query=(WAIT,),
    ),
    Declared(
        "POST",
        "/v1/adapter/verify",
        "adapter",
        "An identity provider's REST second factor (LemonLDAP::NG): 200 with result true or "
        "false; the adapter key as a Bearer token or as HTTP Basic's password",
        AdapterVerify,
        AdapterResult,
        200,
        adapter_verify,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
