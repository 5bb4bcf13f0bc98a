"""The User Portal's sign-in (``portal`` keys): the first factor, the second (a code, a push or
a passkey) and the portal hosts' view of ended sessions.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...core.verification import Decision, Reason
from ...errors import InvalidInput, NotFound, OpenMfaError
from ...farm.push_relay import wait_outcome
from ...node import audit as audit_log
from ...node.apikeys import ApiClient
from ...node.authenticator import Attempt
from ...node.first_factor import FirstFactor, PasswordCheck
from ...node.portal import SESSION, TICKET, Grant
from ...store.changes import AuditEvent
from ...wiring import NodeRuntime
from ..http import _authorize, _body, _int_param, _node, _run, _token, json_response
from ..models import (
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PendingPush,
    PortalSecondFactor,
    PortalSessionsEnd,
    PortalSignIn,
    PortalStep,
    SessionEnd,
    SessionsEnded,
)
from ..table import Declared


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


def _locked(node: NodeRuntime, name: str) -> bool:
    try:
        until = node.accounts.get_user(name).locked_until
    except NotFound:
        return False  # an unknown user's password is "wrong" like anyone's
    return until is not None and until > time.time()


def _first_factor(node: NodeRuntime) -> PasswordCheck:
    return node.password_checks.get(node.portal.primary) or node.password_checks["local"]


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
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
