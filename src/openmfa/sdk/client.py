"""Typed Python clients for the Web Service SDK, synchronous and asynchronous.

The User Portal, the Mobile App Web Service and the identity-provider adapters talk to a node
only through these clients (they hold an API key, never database credentials)::

    with SdkClient(["https://mfa1:8480", "https://mfa2:8480"], api_key) as sdk:
        decision = sdk.authenticate("alice", "123456")
        if decision.accepted: ...

    async with AsyncSdkClient("https://mfa1:8480", api_key) as sdk:
        user = await sdk.get_user("alice")

Both are thin: ``Requests`` (``openmfa.sdk.calls``) builds every call (method, path, query,
body, answer type) without any I/O, and ``Plan.flow`` (``openmfa.sdk.plan``) is the one send
loop: which node to ask, failing over between nodes, following a farm's master, checking each
node's SDK version. ``SdkClient`` (here) and ``AsyncSdkClient`` (``openmfa.sdk.async_client``)
only move its bytes, and offer the same methods (a test holds them to it).

- **Several nodes.** Reads and authentications go to the node that answered last and fail over
  to the others when it cannot be reached (or answers 503). Writes are not repeated elsewhere
  after a connection that may have reached the node.
- **Farms.** A write that reaches a subordinate comes back ``409 not_master`` with the master's
  URL; the client sends it there (with the same request id; a few times at most, as nodes not yet
  told of a new master name the former one) and keeps writing there.
- **Versions.** On first contact with a node the client reads ``GET /version`` and refuses,
  with ``NodeTooOld``, a node that does not serve this client's SDK version.
- **Errors.** Every error answer raises the exception class of its ``code``
  (``openmfa.sdk.errors``), with ``request_id`` set.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, TypeVar, cast

import httpx
from msgspec import UNSET, UnsetType

from ..errors import OpenMfaError
from .async_client import AsyncSdkClient
from .calls import Call, Requests
from .calls_oidc import OidcRequests
from .calls_privacy import PrivacyRequests
from .headers import SESSION_HEADER
from .models import (
    ActivationCode,
    AuditView,
    BypassGranted,
    ComponentReply,
    ComponentReport,
    Dashboard,
    DecisionView,
    DeviceActivated,
    DevicePoll,
    DeviceView,
    Enrollment,
    MethodView,
    MonthReport,
    OidcClientChecked,
    OidcCodeIssued,
    OidcCodeRequest,
    OidcEamAnswer,
    OidcEamStart,
    OidcEamStarted,
    OidcProviderInfo,
    OidcTokenRequest,
    OidcTokens,
    PasskeyChallenge,
    PasswordChanged,
    PasswordPolicy,
    PersonalData,
    PortalMe,
    PortalStep,
    PortalTotpOffer,
    PushEvents,
    PushOutcome,
    RadiusStats,
    RememberedView,
    SessionList,
    SessionSeen,
    SessionsEnded,
    SessionView,
    TokenView,
    UserView,
    VersionInfo,
    WebPushSubscription,
)
from .plan import HANDOVER_PAUSES, MAX_FOLLOWS, Plan, Reply, Try

__all__ = ["MAX_FOLLOWS", "SESSION_HEADER", "AsyncSdkClient", "Call", "Requests", "SdkClient"]

T = TypeVar("T")

# The send plan's names here before it had its own module (``openmfa.sdk.plan``).
_Plan = Plan
_Try = Try


class SdkClient:
    """The SDK over HTTP, synchronously; ``urls`` is one node's URL or several."""

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str,
        *,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        check_version: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport``: how to reach the node other than over the network (a test's)."""
        # A node in the same process (httpx.ASGITransport, WSGITransport): every try of a write
        # refused during a handover reaches that node again, so none is made after a pause.
        local = isinstance(transport, httpx.ASGITransport | httpx.WSGITransport)
        self._plan = Plan(
            urls, api_key, check_version=check_version, pauses=() if local else HANDOVER_PAUSES
        )
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)

    def __enter__(self) -> SdkClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T], *, request_id: str | None = None) -> T:
        """Send one call (see ``Requests``) and return its typed answer."""
        flow = self._plan.flow(call, request_id)
        attempt = next(flow)
        while True:
            if attempt.pause:
                time.sleep(attempt.pause)
            try:
                r = self._http.request(**attempt.options())
                reply: Reply | httpx.HTTPError = Reply(r.status_code, r.content)
            except httpx.HTTPError as exc:
                reply = exc
            try:
                attempt = flow.send(reply)
            except StopIteration as done:
                return cast(T, done.value)

    # -- the routes -------------------------------------------------------------------------

    def version(self) -> VersionInfo:
        return self.send(Requests.version())

    def ready(self) -> bool:
        try:
            return self.send(Requests.ready()).status == "ready"
        except OpenMfaError:
            return False

    def authenticate(
        self,
        user: str,
        code: str = "",
        *,
        push: bool = False,
        source: str = "",
        request_id: str | None = None,
    ) -> DecisionView:
        call = Requests.authenticate(user, code, push=push, source=source)
        return self.send(call, request_id=request_id)

    def push_outcome(self, push_id: str, *, wait: int = 0) -> PushOutcome:
        return self.send(Requests.push_outcome(push_id, wait=wait))

    def portal_sign_in(
        self,
        user: str,
        password: str,
        *,
        address: str = "",
        agent: str = "",
        purpose: str = "",
        remembered: str = "",
    ) -> PortalStep:
        """The User Portal's first step (a ``portal`` key): a ticket for the second."""
        return self.send(
            Requests.portal_sign_in(
                user, password, address=address, agent=agent, purpose=purpose, remembered=remembered
            )
        )

    def portal_second_factor(
        self,
        ticket: str,
        code: str,
        *,
        address: str = "",
        agent: str = "",
        remember: bool = False,
        pin: str = "",
    ) -> PortalStep:
        """The second step: the user's session token (``.token``) when the code is accepted."""
        return self.send(
            Requests.portal_second_factor(
                ticket, code, address=address, agent=agent, remember=remember, pin=pin
            )
        )

    def portal_push(
        self, ticket: str, *, address: str = "", agent: str = "", pin: str = ""
    ) -> PortalStep:
        """A push to the user's phone as the second factor: show ``.pending.number``."""
        return self.send(Requests.portal_push(ticket, address=address, agent=agent, pin=pin))

    def portal_push_collect(
        self, ticket: str, push_id: str, *, wait: int = 0, remember: bool = False
    ) -> PortalStep:
        """Once the phone approved (waiting up to ``wait`` s): the session token."""
        return self.send(
            Requests.portal_push_collect(ticket, push_id, wait=wait, remember=remember)
        )

    def portal_me(self, session: str, *, purpose: str = "", address: str = "") -> PortalMe:
        return self.send(Requests.portal_me(session, purpose=purpose, address=address))

    def portal_totp_start(self, session: str, label: str = "") -> PortalTotpOffer:
        """Offer the signed-in user an authenticator app's secret; saved by ``confirm``."""
        return self.send(Requests.portal_totp_start(session, label))

    def portal_totp_confirm(
        self, session: str, offer: str, code: str, *, address: str = "", agent: str = ""
    ) -> MethodView:
        return self.send(
            Requests.portal_totp_confirm(session, offer, code, address=address, agent=agent)
        )

    def portal_remove_method(
        self, session: str, method_id: str, *, address: str = "", agent: str = ""
    ) -> None:
        self.send(Requests.portal_remove_method(session, method_id, address=address, agent=agent))

    def portal_activation(
        self, session: str, label: str = "", *, address: str = "", agent: str = ""
    ) -> ActivationCode:
        return self.send(Requests.portal_activation(session, label, address=address, agent=agent))

    def portal_sign_ins(self, session: str, limit: int = 20) -> list[AuditView]:
        return self.send(Requests.portal_sign_ins(session, limit)).events

    def portal_passkey_options(self, ticket: str, origin: str) -> PasskeyChallenge:
        """A passkey sign-in begins: the options for the browser, and a sealed challenge."""
        return self.send(Requests.portal_passkey_options(ticket, origin))

    def oidc_provider(self) -> OidcProviderInfo:
        """The OpenID Connect provider's discovery document and JWKS, for a portal to publish."""
        return self.send(OidcRequests.oidc_provider())

    def oidc_check(self, client_id: str, redirect_uri: str) -> OidcClientChecked:
        """The client of an authorization request, its redirect URI registered (else
        ``InvalidClient`` / ``OAuthRefused``)."""
        return self.send(OidcRequests.oidc_check(client_id, redirect_uri))

    def oidc_code(
        self, session: str, request: OidcCodeRequest, *, address: str = "", agent: str = ""
    ) -> OidcCodeIssued:
        """A one-use authorization code for the signed-in person (``OAuthRefused`` if not)."""
        return self.send(OidcRequests.oidc_code(session, request, address=address, agent=agent))

    def oidc_token(self, request: OidcTokenRequest) -> OidcTokens:
        """The token request -> the ID token (``InvalidGrant``, ``InvalidClient`` … if not)."""
        return self.send(OidcRequests.oidc_token(request))

    def oidc_eam_start(self, request: OidcEamStart) -> OidcEamStarted:
        """Entra ID's external authentication request -> the person and a second-factor ticket."""
        return self.send(OidcRequests.oidc_eam_start(request))

    def oidc_eam_finish(self, session: str, request: str) -> OidcEamAnswer:
        """After the second factor: the ID token to POST back to Entra ID."""
        return self.send(OidcRequests.oidc_eam_finish(session, request))

    def portal_passkey(
        self,
        ticket: str,
        challenge: str,
        credential: str,
        *,
        address: str = "",
        agent: str = "",
        remember: bool = False,
    ) -> PortalStep:
        """The browser's answer (``PublicKeyCredential.toJSON()`` as JSON text)."""
        return self.send(
            Requests.portal_passkey(
                ticket, challenge, credential, address=address, agent=agent, remember=remember
            )
        )

    def portal_passkey_register_options(self, session: str, origin: str) -> PasskeyChallenge:
        return self.send(Requests.portal_passkey_register_options(session, origin))

    def portal_passkey_register(
        self,
        session: str,
        challenge: str,
        credential: str,
        label: str = "",
        *,
        address: str = "",
        agent: str = "",
    ) -> MethodView:
        return self.send(
            Requests.portal_passkey_register(
                session, challenge, credential, label, address=address, agent=agent
            )
        )

    def portal_set_phone(self, session: str, phone: str) -> UserView:
        """The signed-in user's phone number ("" removes it); the node stores E.164."""
        return self.send(Requests.portal_set_phone(session, phone))

    def portal_bypass(self, session: str, *, address: str = "", agent: str = "") -> BypassGranted:
        return self.send(Requests.portal_bypass(session, address=address, agent=agent))

    def portal_password_policy(self, session: str) -> PasswordPolicy:
        """Where the signed-in user's password can be changed, what a new one needs."""
        return self.send(Requests.portal_password_policy(session))

    def portal_change_password(
        self, session: str, current: str, new: str, *, address: str = "", agent: str = ""
    ) -> PasswordChanged:
        """The signed-in user's new password (``changed``: this session's new token)."""
        return self.send(
            Requests.portal_change_password(session, current, new, address=address, agent=agent)
        )

    def adapter_verify(self, user: str, code: str) -> bool:
        """An identity provider's second-factor check: is ``code`` right for ``user``?"""
        return self.send(Requests.adapter_verify(user, code)).result

    def component_report(self, report: ComponentReport) -> ComponentReply:
        """A portal, mobile-service or adapter host says what it runs; the answer may hold
        an order of the farm's (an upgrade, a rollback)."""
        return self.send(Requests.component_report(report))

    def portal_set_default(self, session: str, method_id: str) -> UserView:
        """The method the signed-in user is asked for first ("" clears the choice)."""
        return self.send(Requests.portal_set_default(session, method_id))

    def portal_rename_method(self, session: str, method_id: str, label: str) -> MethodView:
        """The signed-in user's name for one of their methods ("Work phone")."""
        return self.send(Requests.portal_rename_method(session, method_id, label))

    def portal_sign_out_everywhere(self, session: str) -> None:
        """End every session of the signed-in user, on every portal (this token too)."""
        self.send(Requests.portal_sign_out_everywhere(session))

    def portal_sign_out(self, session: str) -> None:
        """End this session of the signed-in user (and its forward-auth cookie) everywhere."""
        self.send(Requests.portal_sign_out(session))

    def portal_seen(
        self,
        session: str,
        address: str,
        user_agent: str,
        earlier: list[str] | None = None,
        language: str = "",
    ) -> SessionSeen:
        """Report the signed-in browser (its address and user agent; ``earlier``: the node
        sessions it held before this one), at most once a minute."""
        return self.send(
            Requests.portal_seen(session, address, user_agent, earlier or [], language)
        )

    def portal_sessions(self, session: str) -> list[SessionView]:
        """Where the signed-in user is signed in: their browsers, newest seen first."""
        return (self.send(Requests.portal_sessions(session))).sessions

    def portal_sessions_and_remembered(self, session: str) -> SessionList:
        """Where the signed-in user is signed in and their remembered browsers, in one call
        (``remembered`` is None from a node that does not say: ask ``portal_remembered``)."""
        return self.send(Requests.portal_sessions_and_remembered(session))

    def portal_end_session(self, session: str, ref: str) -> None:
        """End one of the signed-in user's browsers (``SessionView.id``) on every host."""
        self.send(Requests.portal_end_session(session, ref))

    def portal_remembered(self, session: str) -> list[RememberedView]:
        """The signed-in user's remembered browsers (they skip the second step), newest first."""
        return (self.send(Requests.portal_remembered(session))).browsers

    def portal_forget_remembered(self, session: str, ref: str) -> None:
        """Forget one of the signed-in user's remembered browsers (``RememberedView.id``)."""
        self.send(Requests.portal_forget_remembered(session, ref))

    def portal_cookies_seen(self, seen: list[tuple[str, str]]) -> None:
        """Forward-auth's reports: (user, session) of each cookie it let through."""
        self.send(Requests.portal_cookies_seen(seen))

    def portal_end_sessions(self, user: str, sessions: list[str]) -> None:
        """End sessions of ``user`` by their ids, on every portal host."""
        self.send(Requests.portal_end_sessions(user, sessions))

    def portal_sessions_ended(self, after: int) -> SessionsEnded:
        """The portal hosts' revocation view: sessions ended since row ``after``."""
        return self.send(Requests.portal_sessions_ended(after))

    def portal_backup_codes(
        self, session: str, *, address: str = "", agent: str = ""
    ) -> Enrollment:
        """New backup codes (``.backup_codes``, shown once); the old ones stop working."""
        return self.send(Requests.portal_backup_codes(session, address=address, agent=agent))

    def portal_claim_token(self, session: str, serial: str, code: str) -> MethodView:
        """The signed-in user claims a free inventory token by its serial and current code."""
        return self.send(Requests.portal_claim_token(session, serial, code))

    def list_tokens(
        self, *, unassigned: bool = False, limit: int = 100, after: str = ""
    ) -> list[TokenView]:
        """The token inventory (``unassigned``: only tokens nobody has yet)."""
        return self.send(
            Requests.list_tokens(unassigned=unassigned, limit=limit, after=after)
        ).tokens

    def assign_token(self, serial: str, user: str) -> MethodView:
        """Give an inventory token to ``user``; it becomes one of their methods."""
        return self.send(Requests.assign_token(serial, user))

    def remove_token(self, serial: str) -> None:
        self.send(Requests.remove_token(serial))

    def issue_activation(self, name: str, label: str = "") -> ActivationCode:
        return self.send(Requests.issue_activation(name, label))

    def list_devices(self, name: str) -> list[DeviceView]:
        return self.send(Requests.list_devices(name)).devices

    def revoke_device(self, name: str, device_id: str) -> None:
        self.send(Requests.revoke_device(name, device_id))

    def activate_device(
        self,
        code: str,
        alg: str,
        public_key: str,
        *,
        label: str = "",
        webpush: WebPushSubscription | None = None,
        unlock: str = "",
    ) -> DeviceActivated:
        call = Requests.activate_device(
            code, alg, public_key, label=label, webpush=webpush, unlock=unlock
        )
        return self.send(call)

    def poll_device(self, payload: str, signature: str) -> DevicePoll:
        return self.send(Requests.poll_device(payload, signature))

    def answer_push(self, payload: str, signature: str, unlock: str = "") -> PushOutcome:
        """A device's signed answer; ``unlock``: the screen lock's assertion (an approval
        needs it where the node's ``[mobile] require_unlock`` is on)."""
        return self.send(Requests.answer_push(payload, signature, unlock))

    def push_events(self, boot: str = "", after: int = 0, *, wait: int = 0) -> PushEvents:
        return self.send(Requests.push_events(boot, after, wait=wait))

    def create_user(
        self, name: str, *, display_name: str = "", email: str = "", phone: str = ""
    ) -> UserView:
        return self.send(
            Requests.create_user(name, display_name=display_name, email=email, phone=phone)
        )

    def get_user(self, name: str) -> UserView:
        return self.send(Requests.get_user(name))

    def list_users(self, *, limit: int = 100, after: str = "") -> list[UserView]:
        return self.send(Requests.list_users(limit=limit, after=after)).users

    def find_users(self, email: str) -> list[UserView]:
        """Everyone with this email address (case and spaces around it ignored)."""
        return self.send(Requests.find_users(email)).users

    def update_user(
        self,
        name: str,
        *,
        display_name: str | UnsetType = UNSET,
        email: str | UnsetType = UNSET,
        phone: str | UnsetType = UNSET,
        enabled: bool | UnsetType = UNSET,
    ) -> UserView:
        return self.send(
            Requests.update_user(
                name, display_name=display_name, email=email, phone=phone, enabled=enabled
            )
        )

    def delete_user(self, name: str) -> None:
        self.send(Requests.delete_user(name))

    def export_user(self, name: str) -> PersonalData:
        """Everything held about ``name``: account, methods and devices, audit records."""
        return self.send(PrivacyRequests.export_user(name))

    def erase_user(self, name: str) -> str:
        """Erase ``name``; the pseudonym their audit records carry now."""
        return self.send(PrivacyRequests.erase_user(name)).pseudonym

    def add_user_group(self, name: str, group: str) -> UserView:
        """Put ``name`` in ``group`` by hand (data format 11)."""
        return self.send(Requests.add_user_group(name, group))

    def remove_user_group(self, name: str, group: str) -> UserView:
        """Take ``name`` out of ``group`` they were put in by hand."""
        return self.send(Requests.remove_user_group(name, group))

    def set_user_pin(self, name: str, pin: str) -> UserView:
        """Set ``name``'s PIN (4 to 12 digits; data format 13)."""
        return self.send(Requests.set_user_pin(name, pin))

    def clear_user_pin(self, name: str) -> UserView:
        """Clear ``name``'s PIN."""
        return self.send(Requests.clear_user_pin(name))

    def unlock_user(self, name: str) -> UserView:
        return self.send(Requests.unlock_user(name))

    def bypass(self, name: str, seconds: int) -> float:
        return self.send(Requests.bypass(name, seconds)).bypass_until

    def list_methods(self, name: str) -> list[MethodView]:
        return self.send(Requests.list_methods(name)).methods

    def enroll(
        self,
        name: str,
        kind: Literal["totp", "hotp", "backup-codes"],
        *,
        secret: str | None = None,
        digits: Literal[6, 8] | None = None,
        period: Literal[30, 60] | None = None,
        algorithm: Literal["SHA1", "SHA256", "SHA512"] | None = None,
        label: str = "",
    ) -> Enrollment:
        return self.send(
            Requests.enroll(
                name,
                kind,
                secret=secret,
                digits=digits,
                period=period,
                algorithm=algorithm,
                label=label,
            )
        )

    def remove_method(self, name: str, method_id: str) -> None:
        self.send(Requests.remove_method(name, method_id))

    def resync(self, name: str, method_id: str, first: str, second: str) -> bool:
        return self.send(Requests.resync(name, method_id, first, second)).resynchronised

    def audit(
        self,
        *,
        user: str | None = None,
        since: float | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[AuditView]:
        call = Requests.audit(user=user, since=since, limit=limit, after_id=after_id)
        return self.send(call).events

    def dashboard(self) -> Dashboard:
        """The last 24 hours at a glance (audit:read)."""
        return self.send(Requests.dashboard())

    def month_report(self, month: str | None = None) -> MonthReport:
        """A month's report, YYYY-MM (UTC; this month when None)."""
        return self.send(Requests.month_report(month))

    def radius_stats(self) -> RadiusStats:
        return self.send(Requests.radius_stats())
