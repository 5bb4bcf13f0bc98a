"""The signed-in user's own routes (``/v1/portal/me``, header ``X-OpenMFA-Session``): what they
see and the changes they make to their sign-in methods, most after a fresh sign-in.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...errors import Forbidden
from ...node import audit as audit_log
from ...node.apikeys import ApiClient
from ...node.portal import Grant
from ..headers import FOR_HEADER, OPERATOR_HEADER
from ..http import (
    _actor,
    _authorize,
    _body,
    _int_param,
    _node,
    _origin,
    _purpose,
    _token,
    json_response,
)
from ..models import (
    ActivationCode,
    ActivationRequest,
    AuditPage,
    BypassGranted,
    Enrollment,
    MethodView,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PortalDefault,
    PortalMe,
    PortalMethodName,
    PortalPhone,
    PortalTotpConfirm,
    PortalTotpOffer,
    PortalTotpStart,
    TokenClaim,
    UserView,
)
from ..table import Declared, query_int

SESSION_HEADER = "x-openmfa-session"
"""Where a portal call carries the signed-in user's session token."""


async def _session(request: Request, fresh: bool = False) -> tuple[ApiClient, Grant]:
    """The portal key, and the signed-in user its session token names (``fresh``: signed in
    within ``[portal] reauth_minutes``, as a change of sign-in methods needs): checked in one
    read transaction (``node.signed_in``)."""
    node = _node(request)
    session = request.headers.get(SESSION_HEADER, "")
    if request.headers.get(OPERATOR_HEADER) is not None:  # an operator's call: their role
        await _authorize(request, "portal")
    checked: tuple[ApiClient, Grant] = await run_in_threadpool(
        lambda: node.signed_in.check(_token(request), session, time.time(), fresh=fresh)
    )
    return checked


async def portal_me(request: Request) -> Response:
    """The signed-in user (``X-OpenMFA-Session``: the session token) and their methods, with
    the session's check, in one read transaction (``node.signed_in``); with
    ``X-OpenMFA-Sign-In-For`` (a site behind forward-auth), the rule of that purpose this
    session does not satisfy, judged from the browser's address (``PortalMe.step_up``)."""
    node = _node(request)
    session = request.headers.get(SESSION_HEADER, "")
    if request.headers.get(OPERATOR_HEADER) is not None:  # an operator's call: their role
        await _authorize(request, "portal")
    key = _token(request)
    purpose = _purpose(request) if request.headers.get(FOR_HEADER) else None
    me, grant = await run_in_threadpool(node.signed_in.me, key, session, time.time())
    if purpose is not None:
        step_up, address = node.sign_in.policy.step_up, _origin(request).address
        rule = await run_in_threadpool(step_up, grant, purpose, address, me.user.groups)
        me.step_up = rule.name if rule is not None else ""
    return json_response(me)


async def portal_totp_start(request: Request) -> Response:
    """Offer the signed-in user a new authenticator app's secret (saved only once proven;
    ``node.portal_methods``)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PortalTotpStart, node.max_body)
    return json_response(node.portal_methods.totp_offer(grant.user, client.name, b.label))


async def portal_totp_confirm(request: Request) -> Response:
    """The code the app shows for the offer: then, and only then, the method is saved."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    b = await _body(request, PortalTotpConfirm, node.max_body)
    method = await node.portal_methods.totp_confirm(
        grant.user, client.name, request.state.request_id, b.offer, b.code, _origin(request)
    )
    return json_response(method, 201)


async def portal_method(request: Request) -> Response:
    """The signed-in user removes one of their methods (a fresh sign-in needed)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    method_id = request.path_params["method_id"]
    actor = _actor(request, client, _origin(request))
    await run_in_threadpool(node.accounts.remove_method, grant.user, method_id, actor)
    return Response(status_code=204)


async def portal_method_name(request: Request) -> Response:
    """The signed-in user names one of their methods (``node.portal_methods``)."""
    node = _node(request)
    client, grant = await _session(request)
    b = await _body(request, PortalMethodName, node.max_body)
    method_id = request.path_params["method_id"]
    done = await run_in_threadpool(
        node.portal_methods.rename, grant.user, method_id, b.label, _actor(request, client)
    )
    return json_response(done)


async def portal_activation(request: Request) -> Response:
    """The signed-in user activates the mobile app: an activation code (a fresh sign-in)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    body = await _body(request, ActivationRequest, node.max_body)
    actor = _actor(request, client, _origin(request))
    code = await run_in_threadpool(node.push.issue_activation, grant.user, body.label, actor)
    return json_response(code, 201)


async def portal_sign_ins(request: Request) -> Response:
    """The signed-in user's recent sign-ins (newest first, ``?limit``, at most 100)."""
    node = _node(request)
    _, grant = await _session(request)
    limit = _int_param(request, "limit", 20, 1, 100)
    found = await run_in_threadpool(audit_log.sign_ins, node.store, grant.user, limit)
    return json_response(AuditPage(events=found, next_after_id=None))


async def portal_backup_codes(request: Request) -> Response:
    """New backup codes for the signed-in user, shown once; the old ones stop working (a
    fresh sign-in needed)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    rid, origin = request.state.request_id, _origin(request)
    return json_response(
        await node.portal_methods.renew_backup_codes(grant.user, client.name, rid, origin), 201
    )


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
    actor = _actor(request, client, _origin(request))
    done = await run_in_threadpool(
        lambda: node.passkeys.register(
            grant.user, client.name, b.challenge, b.credential, b.label, actor
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


async def portal_bypass(request: Request) -> Response:
    """A one-time bypass the signed-in user asks for, where ``[portal] bypass_seconds`` allows
    it (a fresh sign-in needed; audited)."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    seconds = node.portal.bypass_seconds
    if seconds <= 0:
        raise Forbidden("one-time bypass requests are off here ([portal] bypass_seconds)")
    actor = _actor(request, client, _origin(request))
    until = await run_in_threadpool(node.accounts.grant_bypass, grant.user, seconds, actor)
    return json_response(BypassGranted(user=grant.user, bypass_until=until), 201)


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


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/portal/me",
        "portal",
        "The signed-in user and their methods (header X-OpenMFA-Session: the session token)",
        None,
        PortalMe,
        200,
        portal_me,
    ),
    Declared(
        "POST",
        "/v1/portal/me/totp",
        "portal",
        "Offer the signed-in user a new authenticator app's secret (a fresh sign-in needed)",
        PortalTotpStart,
        PortalTotpOffer,
        200,
        portal_totp_start,
    ),
    Declared(
        "POST",
        "/v1/portal/me/totp/confirm",
        "portal",
        "Save the offered authenticator app once the user types its code",
        PortalTotpConfirm,
        MethodView,
        201,
        portal_totp_confirm,
    ),
    Declared(
        "DELETE",
        "/v1/portal/me/methods/{method_id}",
        "portal",
        "The signed-in user removes a method of theirs (a fresh sign-in needed)",
        None,
        None,
        204,
        portal_method,
    ),
    Declared(
        "PUT",
        "/v1/portal/me/methods/{method_id}/name",
        "portal",
        "The signed-in user names a method of theirs (1 to 64 printable characters)",
        PortalMethodName,
        MethodView,
        200,
        portal_method_name,
    ),
    Declared(
        "POST",
        "/v1/portal/me/devices/activation",
        "portal",
        "An activation code for the signed-in user's mobile app (a fresh sign-in needed)",
        ActivationRequest,
        ActivationCode,
        201,
        portal_activation,
    ),
    Declared(
        "GET",
        "/v1/portal/me/sign-ins",
        "portal",
        "The signed-in user's recent sign-ins, newest first (?limit, at most 100)",
        None,
        AuditPage,
        200,
        portal_sign_ins,
        query=(query_int("limit", 1, 100, 20),),
    ),
    Declared(
        "POST",
        "/v1/portal/me/backup-codes",
        "portal",
        "New backup codes for the signed-in user, shown once (a fresh sign-in needed)",
        None,
        Enrollment,
        201,
        portal_backup_codes,
    ),
    Declared(
        "POST",
        "/v1/portal/me/passkeys/options",
        "portal",
        "The signed-in user registers a passkey: the browser's options (a fresh sign-in)",
        PasskeyOptions,
        PasskeyChallenge,
        200,
        portal_passkey_register_options,
    ),
    Declared(
        "POST",
        "/v1/portal/me/passkeys",
        "portal",
        "Save the browser's new credential as the signed-in user's passkey",
        PasskeyAnswer,
        MethodView,
        201,
        portal_passkey_register,
    ),
    Declared(
        "PUT",
        "/v1/portal/me/phone",
        "portal",
        "The signed-in user's phone number, stored as E.164 (a fresh sign-in needed)",
        PortalPhone,
        UserView,
        200,
        portal_phone,
    ),
    Declared(
        "PUT",
        "/v1/portal/me/default",
        "portal",
        'The method the signed-in user is asked for first ("" clears the choice)',
        PortalDefault,
        UserView,
        200,
        portal_default,
    ),
    Declared(
        "POST",
        "/v1/portal/me/sign-out-everywhere",
        "portal",
        "End every portal session of the signed-in user, on every portal and node",
        None,
        None,
        204,
        portal_sign_out_everywhere,
    ),
    Declared(
        "POST",
        "/v1/portal/me/sign-out",
        "portal",
        "End this portal session (and the forward-auth cookie that carries its id) everywhere",
        None,
        None,
        204,
        portal_sign_out,
    ),
    Declared(
        "POST",
        "/v1/portal/me/bypass",
        "portal",
        "A one-time bypass the signed-in user asks for, where [portal] bypass_seconds allows",
        None,
        BypassGranted,
        201,
        portal_bypass,
    ),
    Declared(
        "POST",
        "/v1/portal/me/tokens",
        "portal",
        "The signed-in user claims a free token by its serial and the code it shows now",
        TokenClaim,
        MethodView,
        201,
        portal_token_claim,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
