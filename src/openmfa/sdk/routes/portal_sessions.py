"""Where the signed-in person is signed in (``/v1/portal/me/seen``, ``/v1/portal/me/sessions``,
``/v1/portal/me/remembered``, header ``X-OpenMFA-Session``): a portal host reports the browser it
serves, the person lists their browsers and ends one (``node.portal_sessions``), and lists and
forgets the browsers they asked to be remembered (``node.remembered``)."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..headers import OPERATOR_HEADER
from ..http import _authorize, _body, _node, _token, json_response
from ..models import PortalCookiesSeen, PortalSeen, RememberedList, SessionList, SessionSeen
from ..table import Declared
from .portal_me import SESSION_HEADER, _session


async def portal_seen(request: Request) -> Response:
    """A portal host reports the signed-in browser (at most once a minute)."""
    node = _node(request)
    _, grant = await _session(request)
    b = await _body(request, PortalSeen, node.max_body)
    seen = await run_in_threadpool(
        node.portal_sessions.seen,
        grant,
        b.address,
        b.user_agent,
        b.earlier,
        time.time(),
        b.language,
    )
    return json_response(seen)


async def portal_cookies_seen(request: Request) -> Response:
    """A portal host reports the forward-auth cookies it let through (each at most once a
    minute): their sessions' last seen moves. 204 whatever the names (``portal_sessions``)."""
    node = _node(request)
    await _authorize(request, "portal")
    b = await _body(request, PortalCookiesSeen, node.max_body)
    await run_in_threadpool(node.portal_sessions.cookies_seen, b.seen, time.time())
    return Response(status_code=204)


async def portal_sessions(request: Request) -> Response:
    """The signed-in person's browsers, newest seen first, and their remembered browsers (the
    page's one call: the session's check and both lists in one trip to the thread pool)."""
    node = _node(request)
    if request.headers.get(OPERATOR_HEADER) is not None:  # an operator's call: their role
        await _authorize(request, "portal")
    key, session = _token(request), request.headers.get(SESSION_HEADER, "")

    def page() -> SessionList:
        now = time.time()
        _, grant = node.signed_in.check(key, session, now)
        found = node.portal_sessions.list(grant, now)
        found.remembered = node.sign_in.remembered.list(grant.user, now).browsers
        return found

    return json_response(await run_in_threadpool(page))


async def portal_session_end(request: Request) -> Response:
    """The signed-in person ends one of their browsers' sessions, on every host."""
    node = _node(request)
    client, grant = await _session(request)
    ref = request.path_params["ref"]
    rid = request.state.request_id
    await run_in_threadpool(
        lambda: node.portal_sessions.end(grant, ref, client=client.name, rid=rid)
    )
    return Response(status_code=204)


async def portal_remembered(request: Request) -> Response:
    """The signed-in person's remembered browsers, newest first."""
    node = _node(request)
    _, grant = await _session(request)
    found = await run_in_threadpool(node.sign_in.remembered.list, grant.user, time.time())
    return json_response(found)


async def portal_forget_remembered(request: Request) -> Response:
    """The signed-in person forgets one of their remembered browsers, on every node."""
    node = _node(request)
    client, grant = await _session(request)
    ref = request.path_params["ref"]
    rid = request.state.request_id
    await run_in_threadpool(
        lambda: node.sign_in.remembered.end(grant.user, ref, client=client.name, rid=rid)
    )
    return Response(status_code=204)


ROUTES: list[Declared] = [
    Declared(
        "POST",
        "/v1/portal/me/seen",
        "portal",
        "A portal host reports the signed-in browser: address, user agent, language (each minute)",
        PortalSeen,
        SessionSeen,
        200,
        portal_seen,
    ),
    Declared(
        "POST",
        "/v1/portal/sessions/seen",
        "portal",
        "A portal host reports the forward-auth cookies it let through (last seen, each minute)",
        PortalCookiesSeen,
        None,
        204,
        portal_cookies_seen,
    ),
    Declared(
        "GET",
        "/v1/portal/me/sessions",
        "portal",
        "Where the signed-in user is signed in: their browsers, newest seen first",
        None,
        SessionList,
        200,
        portal_sessions,
    ),
    Declared(
        "DELETE",
        "/v1/portal/me/sessions/{ref}",
        "portal",
        "The signed-in user ends one of their browsers' sessions, on every portal host",
        None,
        None,
        204,
        portal_session_end,
    ),
    Declared(
        "GET",
        "/v1/portal/me/remembered",
        "portal",
        "The signed-in user's remembered browsers (they skip the second step), newest first",
        None,
        RememberedList,
        200,
        portal_remembered,
    ),
    Declared(
        "DELETE",
        "/v1/portal/me/remembered/{ref}",
        "portal",
        "The signed-in user forgets one of their remembered browsers, on every node",
        None,
        None,
        204,
        portal_forget_remembered,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
