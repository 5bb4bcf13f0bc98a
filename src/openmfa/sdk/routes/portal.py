"""The User Portal's sign-in (``portal`` keys): the first factor, the second (a code, a push or
a passkey) and the portal hosts' view of ended sessions.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..http import (
    _authorize,
    _body,
    _int_param,
    _node,
    _origin,
    _purpose,
    _remembered,
    _token,
    json_response,
)
from ..models import (
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PortalSecondFactor,
    PortalSessionsEnd,
    PortalSignIn,
    PortalStep,
    SessionEnd,
    SessionsEnded,
)
from ..table import Declared, query_int


async def portal_sign_in(request: Request) -> Response:
    """The portal's first step: the user's first factor -> a ticket for the second
    (``node.portal_sign_in``)."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PortalSignIn, node.max_body)
    step = await node.sign_in.first(
        b.user,
        b.password,
        client.name,
        request.state.request_id,
        _token(request),
        _origin(request),
        _purpose(request),
        _remembered(request),
    )
    return json_response(step)


async def portal_second_factor(request: Request) -> Response:
    """The second step: a code of the user's (or an approved push) -> a session token bound to
    the user."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PortalSecondFactor, node.max_body)
    step = await node.sign_in.second(
        b.ticket,
        client.name,
        request.state.request_id,
        _token(request),
        code=b.code,
        method=b.method,
        push_id=b.push_id,
        wait=b.wait,
        origin=_origin(request),
        remember=b.remember,
        pin=b.pin,
    )
    return json_response(step)


async def portal_passkey_options(request: Request) -> Response:
    """A passkey sign-in begins (the ticket of the first factor): the browser's options."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PasskeyOptions, node.max_body)
    return json_response(await node.sign_in.passkey_options(b.ticket, client.name, b.origin))


async def portal_passkey(request: Request) -> Response:
    """The browser's answer to a passkey sign-in: a session token bound to the user."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, PasskeyAnswer, node.max_body)
    step = await node.sign_in.passkey(
        b.ticket,
        client.name,
        request.state.request_id,
        b.challenge,
        b.credential,
        _origin(request),
        b.remember,
    )
    return json_response(step)


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


ROUTES: list[Declared] = [
    Declared(
        "POST",
        "/v1/portal/sign-in",
        "portal",
        "The User Portal's first step: the user's first factor -> a ticket",
        PortalSignIn,
        PortalStep,
        200,
        portal_sign_in,
    ),
    Declared(
        "POST",
        "/v1/portal/second-factor",
        "portal",
        "The second step: the ticket and a code -> a session token bound to the user",
        PortalSecondFactor,
        PortalStep,
        200,
        portal_second_factor,
    ),
    Declared(
        "POST",
        "/v1/portal/passkey/options",
        "portal",
        "A passkey sign-in begins (the ticket): the browser's options and a sealed challenge",
        PasskeyOptions,
        PasskeyChallenge,
        200,
        portal_passkey_options,
    ),
    Declared(
        "POST",
        "/v1/portal/passkey",
        "portal",
        "The browser's passkey answer (the ticket) -> a session token bound to the user",
        PasskeyAnswer,
        PortalStep,
        200,
        portal_passkey,
    ),
    Declared(
        "POST",
        "/v1/portal/sessions/end",
        "portal",
        "End sessions of a person by their ids (a signing-out browser's forward-auth cookie)",
        PortalSessionsEnd,
        None,
        204,
        portal_sessions_end,
    ),
    Declared(
        "GET",
        "/v1/portal/sessions/ended",
        "portal",
        "The portal hosts' revocation view: sessions ended since row `after`, people locked now",
        None,
        SessionsEnded,
        200,
        portal_sessions_ended,
        query=(query_int("after", 0, 2**62, 0),),
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
