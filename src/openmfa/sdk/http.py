"""What every SDK route shares: the node and the caller's key from the request, the caller's
check before the body is read, the body decoded within its limit, query parameters, JSON
answers.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..contract import TEXT_RE
from ..errors import InvalidInput, MalformedRequest, PayloadTooLarge
from ..node.accounts import Actor
from ..node.apikeys import ApiClient
from ..node.audit import NOWHERE, Origin
from ..node.portal_policy import Purpose
from ..node.portal_sessions import summarise
from ..wiring import NodeRuntime
from .headers import ADDRESS_HEADER, AGENT_HEADER, FOR_HEADER, OPERATOR_HEADER, REMEMBERED_HEADER
from .models import AccessCodeRequest, BypassRequest, MethodCreate

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


def _actor(request: Request, client: ApiClient, origin: Origin = NOWHERE) -> Actor:
    return Actor(client=client.name, request_id=request.state.request_id, origin=origin)


def _origin(request: Request) -> Origin:
    """Where the browser is, as the portal says (``ADDRESS_HEADER``, ``AGENT_HEADER``, on its
    sign-in calls and its calls that change a person's methods or password): its address, and
    its browser's and system's names (the user agent itself is not kept)."""
    address = request.headers.get(ADDRESS_HEADER, "")
    agent = request.headers.get(AGENT_HEADER, "")
    if len(address) > 64 or TEXT_RE.fullmatch(address) is None:
        raise InvalidInput(f"{ADDRESS_HEADER} must be an address: printable, at most 64 long")
    if len(agent) > 512 or TEXT_RE.fullmatch(agent) is None:
        raise InvalidInput(f"{AGENT_HEADER} must be a user agent: printable, at most 512 long")
    browser, system = summarise(agent) if agent else ("", "")
    return Origin(address, browser, system)


def _purpose(request: Request) -> Purpose:
    """What a portal's first sign-in step is for (``FOR_HEADER``; absent: the portal)."""
    return Purpose.parse(request.headers.get(FOR_HEADER, ""))


def _remembered(request: Request) -> str:
    """The token of the browser's remember cookie a first sign-in step passes (""; none)."""
    said = request.headers.get(REMEMBERED_HEADER, "")
    if said and not (len(said) <= 128 and all(c.isalnum() or c in "-_" for c in said)):
        raise InvalidInput(f"{REMEMBERED_HEADER} must be a remembered browser's token")
    return said


def _whole_numbers(value: Any) -> Any:
    """JSON has one number type: 30.0 is the integer 30 (JSON Schema agrees), 30.5 is not."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


_NUMBERED: tuple[type[msgspec.Struct], ...] = (BypassRequest, MethodCreate, AccessCodeRequest)
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
    moment ago is refused there as on every other route. A call with an operator's token
    (``OPERATOR_HEADER``, the console's) is the operator's: their role decides (``node.roles``),
    every time."""
    node = _node(request)
    token = _token(request)
    operator = request.headers.get(OPERATOR_HEADER)
    if operator is not None:
        acting: ApiClient = await run_in_threadpool(node.operator, token, operator, permission)
        return acting
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
