"""The Web Service SDK as an ASGI application (Starlette): routes only.

Every route checks the caller's API key and its scope first, before it reads a body, and
every error leaves as JSON ``{"code", "message", "request_id"}``. Authentications go through
the node's commit queue; other calls run in the thread pool against the same node services the
CLI uses. The node itself (``wiring.NodeRuntime``) is started by ``openmfa serve``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..core.totp import verify as totp_verify
from ..core.verification import Decision, Reason
from ..errors import (
    Forbidden,
    InvalidInput,
    MalformedRequest,
    NotFound,
    NotMaster,
    NotReady,
    OpenMfaError,
    PayloadTooLarge,
    RequestError,
    Unauthorized,
)
from ..farm.push_relay import wait_outcome
from ..metrics import endpoint as metrics_endpoint
from ..node import audit as audit_log
from ..node.accounts import SECRET_BYTES, Actor, key_uri
from ..node.apikeys import ApiClient
from ..node.authenticator import Attempt
from ..node.first_factor import FirstFactor, PasswordCheck
from ..node.portal import OFFER, SESSION, TICKET, Grant
from ..store.changes import AuditEvent
from ..store.database import DATA_FORMAT, READS_FORMATS
from ..wiring import NodeRuntime
from .models import (
    NAME_RE,
    SDK_VERSIONS,
    TEXT_RE,
    ActivationRequest,
    AdapterResult,
    AdapterVerify,
    AuditPage,
    AuthenticateRequest,
    BypassGranted,
    BypassRequest,
    ComponentReply,
    ComponentReport,
    DecisionView,
    DeviceActivate,
    DeviceList,
    ErrorBody,
    Health,
    MethodCreate,
    MethodList,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PendingPush,
    PortalDefault,
    PortalMe,
    PortalPhone,
    PortalSecondFactor,
    PortalSessionsEnd,
    PortalSignIn,
    PortalStep,
    PortalTotpConfirm,
    PortalTotpOffer,
    PortalTotpStart,
    RadiusStats,
    Resynchronised,
    ResyncRequest,
    SessionEnd,
    SessionsEnded,
    SignedMessage,
    TokenAssign,
    TokenClaim,
    TokenPage,
    UserCreate,
    UserPage,
    UserPatch,
    UserView,
    VersionInfo,
)
from .openapi import document

log = logging.getLogger("openmfa.sdk")
SESSION_HEADER = "x-openmfa-session"
"""Where a portal call carries the signed-in user's session token."""
S = TypeVar("S", bound=msgspec.Struct)
JSON = "application/json"
_encode = msgspec.json.Encoder().encode


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type=JSON)


def _node(request: Request) -> NodeRuntime:
    node: NodeRuntime = request.app.state.node
    return node


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _basic_key(request: Request) -> str | None:
    """The API key as HTTP Basic's password (``http://name:KEY@node/...``): LemonLDAP::NG's
    REST second factor cannot set headers, but its HTTP client sends a URL's user-info so."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def _actor(request: Request, client: ApiClient) -> Actor:
    return Actor(client=client.name, request_id=request.state.request_id)


def _whole_numbers(value: Any) -> Any:
    """JSON has one number type: 30.0 is the integer 30 (JSON Schema agrees), 30.5 is not."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


_NUMBERED: tuple[type[msgspec.Struct], ...] = (BypassRequest, MethodCreate)
"""Bodies with integer fields: decoded in two steps so that 30.0 counts as 30."""


async def _body(request: Request, kind: type[S], limit: int) -> S:
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit() and len(length) <= 18):
            raise MalformedRequest("the Content-Length header is not a number")
        if int(length) > limit:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
    try:
        if kind in _NUMBERED:
            return msgspec.convert(_whole_numbers(msgspec.json.decode(bytes(data))), type=kind)
        return msgspec.json.decode(bytes(data), type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the request body is not valid: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from None


async def _authorize(request: Request, permission: str) -> ApiClient:
    """Every route's check of the caller, before its body is read: the key ring against the
    data file's current generation, in the thread pool. For authentications (the hot path) a
    key the ring confirmed within the last second is taken from memory here, and the commit
    thread checks it again against the generation of its own transaction, so a key revoked a
    moment ago is refused there as on every other route."""
    node = _node(request)
    token = _token(request)
    client = node.keyring.recent(token, time.time()) if permission == "authenticate" else None
    if client is None:
        checked: ApiClient = await run_in_threadpool(node.client, token, permission)
        return checked
    client.require(permission)
    return client


async def _call(request: Request, permission: str, fn: Callable[[ApiClient], Any]) -> Any:
    """The caller checked, then ``fn`` in the thread pool (for routes without a body)."""
    return await _run(await _authorize(request, permission), fn)


async def _run(client: ApiClient, fn: Callable[[ApiClient], Any]) -> Any:
    return await run_in_threadpool(fn, client)


# -- routes ------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    ready, why = _node(request).readiness.state()  # from memory: never waits (node.readiness)
    if ready:
        return json_response(Health(status="ready"))
    raise NotReady(why)


async def version(request: Request) -> Response:
    node = _node(request)
    fmt = await run_in_threadpool(node.store.data_format)
    return json_response(
        VersionInfo(
            release=__version__,
            data_format=fmt,
            writes_format=DATA_FORMAT,
            reads_formats=list(READS_FORMATS),
            node=node.store.node_name,
            sdk_versions=list(SDK_VERSIONS),
        )
    )


async def metrics(request: Request) -> Response:
    """Prometheus text format (``node.metrics``); no key: counts only, no names."""
    registry = _node(request).metrics
    return await run_in_threadpool(metrics_endpoint, registry)


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type=JSON)


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
            await run_in_threadpool(node.push.require_master)
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
        )
        for tries in range(PROMOTION_TRIES):
            result = await node.queue.submit(attempt)
            if isinstance(result, OpenMfaError):
                raise result
            d: Decision = result
            if d.reason is not Reason.PENDING or d.pending is not None:
                break
            # The push was not opened here: this node is no master (not_master: the client
            # asks the master), or it has just been promoted and its authenticator has not
            # yet taken the role (a moment): then it asks again.
            await run_in_threadpool(node.push.require_master)
            if tries + 1 < PROMOTION_TRIES:
                await asyncio.sleep(0.1)
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


PROMOTION_TRIES = 50
"""How often (0.1 s apart) a push sign-in on a just-promoted master is tried again."""
_decode_authenticate = msgspec.json.Decoder(AuthenticateRequest).decode
_CRASH = "the node failed to handle this request; its log has the details under this request id"


async def adapter_verify(request: Request) -> Response:
    """An identity provider's REST second factor (LemonLDAP::NG ``rest2fVerifyUrl``): the user
    and the code they typed -> HTTP 200 with ``{"result": true|false}``. An ``adapter`` key, as
    a Bearer token or HTTP Basic's password. A wrong code, an unknown or locked user, a code
    that cannot be one: ``result: false`` (counted toward the lockout like any); a refused key
    or a node that cannot decide: an error status, on which the identity provider fails closed."""
    node = _node(request)
    token = _basic_key(request) or _token(request)
    client: ApiClient = await run_in_threadpool(node.client, token, "adapter")
    b = await _body(request, AdapterVerify, node.max_body)
    code = b.code.strip().replace(" ", "").replace("-", "")  # as typed: 04551-21019
    if NAME_RE.fullmatch(b.user) is None or not code or TEXT_RE.fullmatch(code) is None:
        return json_response(AdapterResult(result=False))  # no such user, or no code typed
    result = await node.queue.submit(
        Attempt(
            b.user,
            code,
            client=client.name,
            request_id=request.state.request_id,
            token=token,
            push=False,
        )
    )
    if isinstance(result, OpenMfaError):
        raise result
    return json_response(AdapterResult(result=result.accepted))


async def component_report(request: Request) -> Response:
    """A portal, mobile-service or adapter host reports what it runs (``farm.components``);
    its key's scope must be the kind it says it is. The answer holds the farm's order for it."""
    node = _node(request)
    client = await _authorize(request, "report")
    b = await _body(request, ComponentReport, node.max_body)
    if b.kind != client.scope:
        raise Forbidden(
            f"API key {client.name!r} has scope {client.scope!r}; a {b.kind} reports with a "
            f"key of scope {b.kind!r}"
        )
    order = node.components.report(b)
    return json_response(ComponentReply(order=order, every=node.components.every()))


async def push_outcome(request: Request) -> Response:
    """Where a push request stands; ``?wait=N`` holds the answer up to N seconds (at most 60)
    until the phone answers or the request expires."""
    node = _node(request)
    push_id = request.path_params["push_id"]
    wait = _int_param(request, "wait", 0, 0, 60)
    client = await _authorize(request, "authenticate")
    await run_in_threadpool(node.push.require_master)
    outcome = await _run(client, lambda c: node.push.outcome(push_id, c.name))  # the caller's?
    if outcome.status == "pending" and wait:
        # Still pending when this node hands the master's role over: the caller asks again
        # and is sent to the new master (not_master), which has the request now.
        outcome = await wait_outcome(node.push, node.push_hub, node.store, push_id, wait)
    return json_response(outcome)


async def portal_sign_in(request: Request) -> Response:
    """The portal's first step: the user's first factor -> a ticket for the second."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PortalSignIn, node.max_body)
    rid = request.state.request_id
    # The node's one first-factor rule (node.first_factor): a locked user's password is not
    # checked; a wrong one counts toward the lock, as a wrong code does.
    d = await FirstFactor(node.store, node.queue).check(
        _first_factor(node),
        Attempt(b.user, "", client=client.name, request_id=rid, token=_token(request), push=False),
        b.password,
        AuditEvent(
            "portal.sign_in",
            "ok",
            user_name=b.user,
            client=client.name,
            request_id=rid,
            detail=f"first factor ({node.portal.primary})",
        ),
    )
    if d.reason is Reason.LOCKED:
        return json_response(PortalStep(accepted=False, reason=str(Reason.LOCKED)))
    if not d.accepted:  # an unknown user's password is wrong like anyone's
        return json_response(PortalStep(accepted=False, reason=str(Reason.WRONG_PASSWORD)))
    if node.portal.self_enroll and not await run_in_threadpool(node.accounts.list_methods, b.user):
        # No method yet, and policy lets people add their first one: signed in already.
        token, expires = node.portal.issue(SESSION, b.user, client.name, time.time())
        event = AuditEvent(
            "portal.self_enroll", "ok", user_name=b.user, client=client.name, request_id=rid
        )
        await run_in_threadpool(audit_log.record, node.store, event)
        return json_response(
            PortalStep(accepted=True, reason="ok", token=token, expires_at=expires)
        )
    ticket, expires = node.portal.issue(TICKET, b.user, client.name, time.time())
    prefer = await run_in_threadpool(_preferred_kind, node, b.user)
    kinds = await run_in_threadpool(_method_kinds, node, b.user)
    return json_response(
        PortalStep(
            accepted=True,
            reason="ok",
            ticket=ticket,
            expires_at=expires,
            prefer=prefer,
            kinds=kinds,
        )
    )


def _method_kinds(node: NodeRuntime, name: str) -> list[str]:
    """The kinds of ``name``'s methods, sorted ([] when no such user)."""
    try:
        return sorted({m.kind for m in node.accounts.list_methods(name)})
    except NotFound:
        return []


def _preferred_kind(node: NodeRuntime, name: str) -> str:
    """The kind of ``name``'s default method ("" when none is chosen, or no such user)."""
    try:
        return node.accounts.default_kind(name)
    except NotFound:
        return ""


async def portal_second_factor(request: Request) -> Response:
    """The second step: a code of the user's -> a session token bound to the user."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PortalSecondFactor, node.max_body)
    grant = node.portal.check(b.ticket, TICKET, client.name, time.time())
    if b.push_id:
        return await _collect_push(request, client, grant, b.push_id, b.wait)
    if b.method == "push":
        if b.code:
            raise InvalidInput("send no code with method push (the phone answers instead)")
        await run_in_threadpool(node.push.require_master)
    elif not b.code:
        raise InvalidInput("send the code of one of the user's methods, or method push")
    result = await node.queue.submit(
        Attempt(
            grant.user,
            "push" if b.method == "push" else b.code,
            client=client.name,
            request_id=request.state.request_id,
            token=_token(request),
            push=b.method == "push",
        )
    )
    if isinstance(result, OpenMfaError):
        raise result
    d: Decision = result
    if d.pending is not None:
        push_id, number, expires = d.pending
        pending = PendingPush(id=push_id, number=number, expires_at=expires)
        return json_response(PortalStep(accepted=False, reason="pending", pending=pending))
    if d.reason is Reason.PENDING:
        await run_in_threadpool(node.push.require_master)  # not here: not_master
    if not d.accepted:
        return json_response(PortalStep(accepted=False, reason=str(d.reason)))
    token, expires = node.portal.issue(SESSION, grant.user, client.name, time.time())
    return json_response(PortalStep(accepted=True, reason="ok", token=token, expires_at=expires))


async def _collect_push(
    request: Request, client: ApiClient, grant: Grant, push_id: str, wait: int
) -> Response:
    """The push this portal opened for the ticket's user: a session token once approved.
    (Asked again, an approved push gives this same portal another token for the same user:
    nothing it did not have.)"""
    node = _node(request)
    await run_in_threadpool(node.push.require_master)
    outcome = await _run(client, lambda c: node.push.outcome(push_id, c.name))
    if outcome.user != grant.user:
        raise NotFound(f"there is no push request {push_id!r} of this sign-in")
    if outcome.status == "pending" and wait:
        outcome = await wait_outcome(node.push, node.push_hub, node.store, push_id, wait)
    if not outcome.accepted:
        return json_response(PortalStep(accepted=False, reason=outcome.status))
    token, expires = node.portal.issue(SESSION, grant.user, client.name, time.time())
    return json_response(PortalStep(accepted=True, reason="ok", token=token, expires_at=expires))


async def portal_me(request: Request) -> Response:
    """The signed-in user (``X-OpenMFA-Session``: the session token) and their methods."""
    node = _node(request)
    _, grant = await _session(request)
    user = await run_in_threadpool(node.accounts.get_user, grant.user)
    found = await run_in_threadpool(node.accounts.list_methods, grant.user)
    return json_response(
        PortalMe(
            user=user,
            methods=found,
            session_id=grant.session_id,
            session_issued_at=grant.issued_at,
            subject=node.session_ends.subject(grant.user),
            bypass_seconds=node.portal.bypass_seconds,
        )
    )


async def _session(request: Request, fresh: bool = False) -> tuple[ApiClient, Grant]:
    """The portal key, and the signed-in user its session token names (``fresh``: signed in
    within ``[portal] reauth_minutes``, as a change of sign-in methods needs)."""
    node = _node(request)
    client = await _authorize(request, "portal")
    now = time.time()
    grant = node.portal.check(request.headers.get(SESSION_HEADER, ""), SESSION, client.name, now)
    if grant.issued_at <= await run_in_threadpool(node.accounts.sessions_after, grant.user):
        raise Unauthorized("the session ended (signed out everywhere); sign in again")
    if await run_in_threadpool(
        node.session_ends.ended, grant.user, grant.session_id, grant.issued_at, now
    ):
        raise Unauthorized("the session ended (signed out, or the account changed); sign in again")
    if fresh:
        grant.require_fresh(node.portal.reauth_minutes, now)
    return client, grant


async def portal_default(request: Request) -> Response:
    """The signed-in user chooses the method they are asked for first."""
    node = _node(request)
    client, grant = await _session(request)
    b = await _body(request, PortalDefault, node.max_body)
    done = await run_in_threadpool(
        node.accounts.set_default_method, grant.user, b.method_id, _actor(request, client)
    )
    return json_response(done)


async def portal_sign_out_everywhere(request: Request) -> Response:
    """The signed-in user ends every session of theirs, on every portal and node."""
    node = _node(request)
    client, grant = await _session(request)
    await run_in_threadpool(node.accounts.end_sessions, grant.user, _actor(request, client))
    return Response(status_code=204)


async def portal_sign_out(request: Request) -> Response:
    """The signed-in user ends this session (and the forward-auth cookie that carries its id),
    on every portal host."""
    node = _node(request)
    client, grant = await _session(request)
    session = grant.session_id
    rid = request.state.request_id
    await run_in_threadpool(
        lambda: node.session_ends.end(grant.user, session, client=client.name, rid=rid)
    )
    return Response(status_code=204)


async def portal_sessions_end(request: Request) -> Response:
    """A portal host ends sessions of a person by their ids (a signing-out browser's
    forward-auth cookie, the sessions its own session held): 204 whatever the names — an id is
    random, so a portal key can end only sessions it was shown."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PortalSessionsEnd, node.max_body)
    rid = request.state.request_id

    def end() -> None:
        for session in dict.fromkeys(b.sessions):
            node.session_ends.end(b.user, session, client=client.name, rid=rid)

    await run_in_threadpool(end)
    return Response(status_code=204)


async def portal_sessions_ended(request: Request) -> Response:
    """The portal hosts' revocation view (``node.session_ends``): what ended since ``after``."""
    node = _node(request)
    await _authorize(request, "portal")
    after = _int_param(request, "after", 0, 0, 2**62)
    now = time.time()
    v = await run_in_threadpool(node.session_ends.view, after, now)
    return json_response(
        SessionsEnded(
            ends=[
                SessionEnd(id=e.id, subject=e.subject, session=e.session, at=e.at) for e in v.ends
            ],
            locked=v.locked,
            last_id=v.last_id,
            more=v.more,
            keep_seconds=v.keep_seconds,
            now=now,
            epoch=v.epoch,
        )
    )


async def portal_totp_start(request: Request) -> Response:
    """Offer the signed-in user a new authenticator app's secret (saved only once proven)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PortalTotpStart, node.max_body)
    e = node.config.values["enroll"]
    key = secrets.token_bytes(SECRET_BYTES[str(e["algorithm"]).upper()])
    secret = base64.b32encode(key).decode().rstrip("=")
    extra = {"s": secret, "l": b.label}
    offer, expires = node.portal.issue(OFFER, grant.user, client.name, time.time(), extra)
    uri = key_uri(
        "totp",
        key,
        issuer=str(e["issuer"]),
        account=grant.user,
        digits=int(e["digits"]),
        period=int(e["period"]),
        algorithm=str(e["algorithm"]).upper(),
    )
    return json_response(
        PortalTotpOffer(offer=offer, secret=secret, otpauth_uri=uri, expires_at=expires)
    )


async def portal_totp_confirm(request: Request) -> Response:
    """The code the app shows for the offer: then, and only then, the method is saved."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PortalTotpConfirm, node.max_body)
    now = time.time()
    offer = node.portal.check(b.offer, OFFER, client.name, now)
    if offer.user != grant.user or not offer.extra:
        raise Unauthorized("this offer is not the signed-in user's; start again")
    e = node.config.values["enroll"]
    secret = offer.extra["s"]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digits, period, algorithm = int(e["digits"]), int(e["period"]), str(e["algorithm"]).upper()
    match = totp_verify(
        key, b.code, now, last_step=-1, digits=digits, period=period, algorithm=algorithm
    )
    if match is None:
        raise InvalidInput(
            "that is not the code the app shows for this secret; check the phone's clock "
            "and type the code it shows now"
        )
    done = await run_in_threadpool(
        lambda: node.accounts.enroll(
            grant.user,
            "totp",
            secret=secret,
            digits=digits,
            period=period,
            algorithm=algorithm,
            label=offer.extra["l"] if offer.extra else "",
            actor=_actor(request, client),
        )
    )
    return json_response(done.method, 201)


async def portal_method(request: Request) -> Response:
    """The signed-in user removes one of their methods (a fresh sign-in needed)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    method_id = request.path_params["method_id"]
    await run_in_threadpool(
        node.accounts.remove_method, grant.user, method_id, _actor(request, client)
    )
    return Response(status_code=204)


async def portal_activation(request: Request) -> Response:
    """The signed-in user activates the mobile app: an activation code (a fresh sign-in)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    body = await _body(request, ActivationRequest, node.max_body)
    await run_in_threadpool(node.push.require_master)
    code = await run_in_threadpool(
        node.push.issue_activation, grant.user, body.label, _actor(request, client)
    )
    return json_response(code, 201)


async def portal_sign_ins(request: Request) -> Response:
    """The signed-in user's recent sign-ins (newest first, ``?limit``, at most 100)."""
    node = _node(request)
    _, grant = await _session(request)
    limit = _int_param(request, "limit", 20, 1, 100)
    found = await run_in_threadpool(
        lambda: audit_log.query(
            node.store,
            user=grant.user,
            limit=limit,
            actions=audit_log.SIGN_INS,
            newest_first=True,
        )
    )
    return json_response(AuditPage(events=found, next_after_id=None))


async def portal_backup_codes(request: Request) -> Response:
    """New backup codes for the signed-in user, shown once; the old ones stop working (a
    fresh sign-in needed)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    actor = _actor(request, client)

    def renew() -> Any:
        for m in node.accounts.list_methods(grant.user):
            if m.kind == "backup-codes":
                node.accounts.remove_method(grant.user, m.id, actor)
        return node.accounts.enroll(grant.user, "backup-codes", label="backup codes", actor=actor)

    return json_response(await run_in_threadpool(renew), 201)


async def portal_passkey_options(request: Request) -> Response:
    """A passkey sign-in begins (the ticket of the first factor): the browser's options."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PasskeyOptions, node.max_body)
    grant = node.portal.check(b.ticket, TICKET, client.name, time.time())
    options, challenge, expires = await run_in_threadpool(
        node.passkeys.authentication, grant.user, client.name, b.origin
    )
    return json_response(PasskeyChallenge(options=options, challenge=challenge, expires_at=expires))


async def portal_passkey(request: Request) -> Response:
    """The browser's answer to a passkey sign-in: a session token bound to the user."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PasskeyAnswer, node.max_body)
    grant = node.portal.check(b.ticket, TICKET, client.name, time.time())
    if await run_in_threadpool(_locked, node, grant.user):
        return json_response(PortalStep(accepted=False, reason=str(Reason.LOCKED)))
    method_id = await run_in_threadpool(
        node.passkeys.authenticate, grant.user, client.name, b.challenge, b.credential
    )
    event = AuditEvent(
        "authenticate",
        "accepted" if method_id else "rejected",
        user_name=grant.user,
        client=client.name,
        method_id=method_id or "",
        reason="ok" if method_id else "wrong_passkey",
        request_id=request.state.request_id,
        detail="passkey",
    )
    await run_in_threadpool(audit_log.record, node.store, event)
    if method_id is None:
        return json_response(PortalStep(accepted=False, reason="wrong_passkey"))
    token, expires = node.portal.issue(SESSION, grant.user, client.name, time.time())
    return json_response(PortalStep(accepted=True, reason="ok", token=token, expires_at=expires))


async def portal_passkey_register_options(request: Request) -> Response:
    """The signed-in user registers a passkey (a fresh sign-in needed): the browser's options."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PasskeyOptions, node.max_body)
    options, challenge, expires = await run_in_threadpool(
        node.passkeys.registration, grant.user, client.name, b.origin
    )
    return json_response(PasskeyChallenge(options=options, challenge=challenge, expires_at=expires))


async def portal_passkey_register(request: Request) -> Response:
    """The browser's new credential: saved as the user's passkey once verified."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PasskeyAnswer, node.max_body)
    done = await run_in_threadpool(
        lambda: node.passkeys.register(
            grant.user, client.name, b.challenge, b.credential, b.label, _actor(request, client)
        )
    )
    return json_response(done, 201)


async def portal_phone(request: Request) -> Response:
    """The signed-in user's phone number (E.164; a fresh sign-in needed)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PortalPhone, node.max_body)
    phone = node.portal.e164(b.phone)
    done = await run_in_threadpool(
        node.accounts.update_user, grant.user, {"phone": phone}, _actor(request, client)
    )
    return json_response(done)


async def portal_bypass(request: Request) -> Response:
    """A one-time bypass the signed-in user asks for, where ``[portal] bypass_seconds`` allows
    it (a fresh sign-in needed; audited)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    seconds = node.portal.bypass_seconds
    if seconds <= 0:
        raise Forbidden("one-time bypass requests are off here ([portal] bypass_seconds)")
    until = await run_in_threadpool(
        node.accounts.grant_bypass, grant.user, seconds, _actor(request, client)
    )
    return json_response(BypassGranted(user=grant.user, bypass_until=until), 201)


def _locked(node: NodeRuntime, name: str) -> bool:
    try:
        until = node.accounts.get_user(name).locked_until
    except NotFound:
        return False  # an unknown user's password is "wrong" like anyone's
    return until is not None and until > time.time()


def _first_factor(node: NodeRuntime) -> PasswordCheck:
    return node.password_checks.get(node.portal.primary) or node.password_checks["local"]


async def activation(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    client = await _authorize(request, "methods:write")
    body = await _body(request, ActivationRequest, node.max_body)
    await run_in_threadpool(node.push.require_master)
    code = await _run(
        client, lambda c: node.push.issue_activation(name, body.label, _actor(request, c))
    )
    return json_response(code, 201)


async def devices(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    found = await _call(request, "methods:read", lambda c: node.push.list_devices(name))
    return json_response(DeviceList(devices=found))


async def device(request: Request) -> Response:
    node = _node(request)
    name, device_id = request.path_params["name"], request.path_params["device_id"]
    await _call(
        request,
        "methods:write",
        lambda c: node.push.revoke(name, device_id, _actor(request, c)),
    )
    return Response(status_code=204)


async def device_activate(request: Request) -> Response:
    """The mobile service passes on a device's activation (code + public key)."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, DeviceActivate, node.max_body)
    # A write, decided at the master: a subordinate may not hold a code made a moment ago.
    await run_in_threadpool(node.push.require_master)
    webpush = msgspec.structs.asdict(b.webpush) if b.webpush is not None else None
    done = await _run(
        client,
        lambda c: node.push.activate(
            b.code, b.alg, b.public_key, b.label, webpush, _actor(request, c)
        ),
    )
    return json_response(done, 201)


async def device_poll(request: Request) -> Response:
    """A device's signed poll, passed on by the mobile service: who it is, what waits."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, SignedMessage, node.max_body)
    await run_in_threadpool(node.push.require_master)
    return json_response(await _run(client, lambda c: node.push.poll(b.payload, b.signature)))


async def push_answer(request: Request) -> Response:
    """A device's signed answer, passed on by the mobile service."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, SignedMessage, node.max_body)
    await run_in_threadpool(node.push.require_master)
    outcome = await _run(
        client, lambda c: node.push.answer(b.payload, b.signature, _actor(request, c))
    )
    node.push_hub.decided(outcome.id)
    return json_response(outcome)


async def push_events(request: Request) -> Response:
    """New push requests since ``after`` (``?boot=…&after=N&wait=S``), for the mobile service."""
    node = _node(request)
    await _authorize(request, "devices")
    await run_in_threadpool(node.push.require_master)
    after = _int_param(request, "after", 0, 0, 2**62)
    wait = _int_param(request, "wait", 0, 0, 60)
    boot = request.query_params.get("boot", "")

    async def still() -> bool:  # a handover ends the wait: the caller is sent to the new master
        return bool(await run_in_threadpool(node.push.is_master))

    return json_response(await node.push_hub.events_after(boot, after, float(wait), still))


async def users(request: Request) -> Response:
    node = _node(request)
    if request.method == "POST":
        client = await _authorize(request, "users:write")
        body = await _body(request, UserCreate, node.max_body)
        user = await _run(
            client,
            lambda c: node.accounts.add_user(
                body.name,
                display_name=body.display_name,
                email=body.email,
                phone=body.phone,
                actor=_actor(request, c),
            ),
        )
        return json_response(user, 201)
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = request.query_params.get("after", "")
    found = await _call(
        request, "users:read", lambda c: node.accounts.list_users(limit=limit, after=after)
    )
    return json_response(
        UserPage(users=found, next_after=found[-1].name if len(found) == limit else None)
    )


async def user(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "GET":
        return json_response(
            await _call(request, "users:read", lambda c: node.accounts.get_user(name))
        )
    if request.method == "DELETE":
        await _call(
            request, "users:write", lambda c: node.accounts.delete_user(name, _actor(request, c))
        )
        return Response(status_code=204)
    client = await _authorize(request, "users:write")
    patch = await _body(request, UserPatch, node.max_body)
    fields = msgspec.structs.asdict(patch)
    fields = {k: v for k, v in fields.items() if v is not msgspec.UNSET}
    default = fields.pop("default_method", None)

    def change(c: ApiClient) -> UserView:
        if fields or default is None:
            node.accounts.update_user(name, fields, _actor(request, c))
        if default is not None:
            node.accounts.set_default_method(name, default, _actor(request, c))
        return node.accounts.get_user(name)

    return json_response(await _run(client, change))


async def unlock(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    return json_response(
        await _call(
            request, "users:write", lambda c: node.accounts.unlock(name, _actor(request, c))
        )
    )


async def bypass(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    client = await _authorize(request, "bypass")
    body = await _body(request, BypassRequest, node.max_body)
    until = await _run(
        client, lambda c: node.accounts.grant_bypass(name, body.seconds, _actor(request, c))
    )
    return json_response(BypassGranted(user=name, bypass_until=until))


async def methods(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "GET":
        found = await _call(request, "methods:read", lambda c: node.accounts.list_methods(name))
        return json_response(MethodList(methods=found))
    client = await _authorize(request, "methods:write")
    b = await _body(request, MethodCreate, node.max_body)
    enrolled = await _run(
        client,
        lambda c: node.accounts.enroll(
            name,
            b.kind,
            secret=b.secret,
            digits=b.digits,
            period=b.period,
            algorithm=b.algorithm,
            label=b.label,
            actor=_actor(request, c),
        ),
    )
    return json_response(enrolled, 201)


async def method(request: Request) -> Response:
    node = _node(request)
    name, method_id = request.path_params["name"], request.path_params["method_id"]
    await _call(
        request,
        "methods:write",
        lambda c: node.accounts.remove_method(name, method_id, _actor(request, c)),
    )
    return Response(status_code=204)


async def resync(request: Request) -> Response:
    node = _node(request)
    name, method_id = request.path_params["name"], request.path_params["method_id"]
    client = await _authorize(request, "methods:write")
    b = await _body(request, ResyncRequest, node.max_body)
    ok = await _run(
        client,
        lambda c: node.accounts.resync_hotp(name, method_id, b.first, b.second, _actor(request, c)),
    )
    return json_response(Resynchronised(resynchronised=ok))


async def tokens(request: Request) -> Response:
    """The OATH token inventory (imported by ``openmfa token import``), never a seed."""
    node = _node(request)
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = request.query_params.get("after", "")
    free = _bool_param(request, "unassigned")
    found = await _call(
        request,
        "methods:read",
        lambda c: node.tokens.inventory(unassigned=free, limit=limit, after=after),
    )
    return json_response(
        TokenPage(tokens=found, next_after=found[-1].serial if len(found) == limit else None)
    )


async def token_assign(request: Request) -> Response:
    """Give an inventory token to a user: it becomes one of their methods."""
    node = _node(request)
    serial = request.path_params["serial"]
    client = await _authorize(request, "methods:write")
    b = await _body(request, TokenAssign, node.max_body)
    done = await _run(client, lambda c: node.tokens.assign(serial, b.user, _actor(request, c)))
    return json_response(done, 201)


async def token(request: Request) -> Response:
    """Remove a free token from the inventory."""
    node = _node(request)
    serial = request.path_params["serial"]
    await _call(request, "methods:write", lambda c: node.tokens.remove(serial, _actor(request, c)))
    return Response(status_code=204)


async def portal_token_claim(request: Request) -> Response:
    """The signed-in user claims the hardware token in their hand: its serial and the code it
    shows now (a fresh sign-in needed, as for every new method)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, TokenClaim, node.max_body)
    done = await run_in_threadpool(
        node.tokens.claim, b.serial.strip(), grant.user, b.code, _actor(request, client)
    )
    return json_response(done, 201)


async def audit(request: Request) -> Response:
    node = _node(request)
    q = request.query_params
    since = _time_param(q.get("since"))
    limit = _int_param(request, "limit", 100, 1, 1000)
    after_id = _int_param(request, "after_id", 0, 0, 2**62)
    found = await _call(
        request,
        "audit:read",
        lambda c: audit_log.query(
            node.store, user=q.get("user"), since=since, limit=limit, after_id=after_id
        ),
    )
    return json_response(
        AuditPage(events=found, next_after_id=found[-1].id if len(found) == limit else None)
    )


async def radius_stats(request: Request) -> Response:
    node = _node(request)
    await _call(request, "audit:read", lambda c: None)
    stats = dict(node.radius.protocol.stats) if node.radius is not None else {}
    return json_response(RadiusStats(enabled=node.radius is not None, counters=stats))


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only ("²".isdigit() is true, int("²") fails), and not thousands of them
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not lo <= int(raw) <= hi:
        raise InvalidInput(f"query parameter {name} must be a whole number from {lo} to {hi}")
    return int(raw)


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false")
    if raw not in ("true", "false"):
        raise InvalidInput(f"query parameter {name} must be true or false")
    return raw == "true"


def _time_param(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidInput(
            "since must be an ISO 8601 time (2026-11-21T10:00:00Z) or seconds since the epoch"
        ) from None


# -- errors and request ids ----------------------------------------------------------------


def _error(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    master_url: str = "",
) -> Response:
    rid = getattr(request.state, "request_id", "")
    body = ErrorBody(code=code, message=message, request_id=rid)
    if master_url:
        body.master_url = master_url
    return Response(_encode(body), status_code=status, media_type=JSON, headers=headers)


async def _openmfa_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenMfaError)
    if not isinstance(exc, RequestError | NotReady):
        log.error("%s: %s", exc.code, exc.message)
    master = exc.master_url if isinstance(exc, NotMaster) else ""
    return _error(request, exc.http_status, exc.code, exc.message, master_url=master)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(
            request,
            404,
            "no_such_route",
            f"there is no {request.url.path}; see /v1/openapi.json for the routes",
        )
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow", "")
        return _error(
            request,
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path} (allowed: {allow})",
            headers={"Allow": allow},  # RFC 9110 §15.5.6
        )
    return _error(request, exc.status_code, "http_error", str(exc.detail))


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return _error(
        request,
        500,
        "internal_error",
        "the node failed to handle this request; its log has the details under this request id",
    )


class RequestIds:
    """Give every request an id (or keep a sane ``X-Request-ID``) and echo it back; hand
    authentications straight to their endpoint (``Authenticate``)."""

    def __init__(self, app: ASGIApp, authenticate: ASGIApp | None = None) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 64 and candidate.isprintable():
                    rid = candidate
                break
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        if (
            self.authenticate is not None
            and scope["path"] == "/v1/authenticate"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self.authenticate(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


def create_app(
    node: NodeRuntime,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The SDK's routes over a running node (``openmfa serve`` gives the lifespan that starts
    and stops it)."""
    openapi_doc = _encode(document(int(node.config.get("policy", "bypass_max_seconds"))))
    authenticate = Authenticate(node)

    u = "/v1/users/{name}"
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/version", version),
        Route("/metrics", metrics),
        Route("/v1/openapi.json", openapi),
        Route("/v1/authenticate", authenticate, methods=["POST"]),  # served by RequestIds
        Route("/v1/authenticate/{push_id}", push_outcome, methods=["GET"]),
        Route("/v1/users", users, methods=["GET", "POST"]),
        Route(u, user, methods=["GET", "PATCH", "DELETE"]),
        Route(u + "/unlock", unlock, methods=["POST"]),
        Route(u + "/bypass", bypass, methods=["POST"]),
        Route(u + "/methods", methods, methods=["GET", "POST"]),
        Route(u + "/methods/{method_id}", method, methods=["DELETE"]),
        Route(u + "/methods/{method_id}/resync", resync, methods=["POST"]),
        Route(u + "/devices", devices, methods=["GET"]),
        Route(u + "/devices/activation", activation, methods=["POST"]),
        Route(u + "/devices/{device_id}", device, methods=["DELETE"]),
        Route("/v1/devices", device_activate, methods=["POST"]),
        Route("/v1/devices/poll", device_poll, methods=["POST"]),
        Route("/v1/push/answer", push_answer, methods=["POST"]),
        Route("/v1/push/events", push_events, methods=["GET"]),
        Route("/v1/adapter/verify", adapter_verify, methods=["POST"]),
        Route("/v1/portal/sign-in", portal_sign_in, methods=["POST"]),
        Route("/v1/portal/second-factor", portal_second_factor, methods=["POST"]),
        Route("/v1/portal/me", portal_me, methods=["GET"]),
        Route("/v1/portal/me/totp", portal_totp_start, methods=["POST"]),
        Route("/v1/portal/me/totp/confirm", portal_totp_confirm, methods=["POST"]),
        Route("/v1/portal/me/methods/{method_id}", portal_method, methods=["DELETE"]),
        Route("/v1/portal/me/devices/activation", portal_activation, methods=["POST"]),
        Route("/v1/portal/me/sign-ins", portal_sign_ins, methods=["GET"]),
        Route("/v1/portal/me/default", portal_default, methods=["PUT"]),
        Route("/v1/portal/me/sign-out-everywhere", portal_sign_out_everywhere, methods=["POST"]),
        Route("/v1/portal/me/sign-out", portal_sign_out, methods=["POST"]),
        Route("/v1/portal/sessions/ended", portal_sessions_ended, methods=["GET"]),
        Route("/v1/portal/sessions/end", portal_sessions_end, methods=["POST"]),
        Route("/v1/portal/me/backup-codes", portal_backup_codes, methods=["POST"]),
        Route("/v1/portal/passkey/options", portal_passkey_options, methods=["POST"]),
        Route("/v1/portal/passkey", portal_passkey, methods=["POST"]),
        Route("/v1/portal/me/passkeys/options", portal_passkey_register_options, methods=["POST"]),
        Route("/v1/portal/me/passkeys", portal_passkey_register, methods=["POST"]),
        Route("/v1/portal/me/phone", portal_phone, methods=["PUT"]),
        Route("/v1/portal/me/bypass", portal_bypass, methods=["POST"]),
        Route("/v1/tokens", tokens, methods=["GET"]),
        Route("/v1/tokens/{serial}", token, methods=["DELETE"]),
        Route("/v1/tokens/{serial}/assign", token_assign, methods=["POST"]),
        Route("/v1/portal/me/tokens", portal_token_claim, methods=["POST"]),
        Route("/v1/components/report", component_report, methods=["POST"]),
        Route("/v1/audit", audit),
        Route("/v1/radius/stats", radius_stats),
        *node.farm.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            OpenMfaError: _openmfa_error,
            HTTPException: _http_error,
            Exception: _crash,
        },
    )
    app.state.node = node
    app.state.openapi = openapi_doc
    app.add_middleware(RequestIds, authenticate=authenticate)
    return app


__all__ = ["create_app"]
