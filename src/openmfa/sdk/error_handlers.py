"""How every error leaves the SDK app, as JSON ``{"code", "message", "request_id"}``, and the
request id each answer carries (``RequestIds``, which also hands authentications straight to
their endpoint).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import NotMaster, NotReady, OpenMfaError, RequestError
from .http import JSON, _encode
from .models import ErrorBody

log = logging.getLogger("openmfa.sdk")


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


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    OpenMfaError: _openmfa_error,
    HTTPException: _http_error,
    Exception: _crash,
}
"""The app's exception handlers: every error an SDK route raises, answered as JSON."""
