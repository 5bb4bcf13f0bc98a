"""The SDK's client for asyncio applications (the portal, the mobile service).

It sends what ``Requests`` builds through the same ``Plan.flow`` as ``SdkClient``, and offers
the same methods, awaited (``tests/sdk/test_client_parity.py`` holds the two to it). See
``openmfa.sdk.client`` for how calls find their node.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, TypeVar, cast

import httpx
from msgspec import UNSET, UnsetType

from ..errors import OpenMfaError
from .calls import Call, Requests
from .calls_oidc import OidcRequests
from .calls_privacy import PrivacyRequests
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
from .plan import HANDOVER_PAUSES, Plan, Reply
from .pools import Pools

__all__ = ["AsyncSdkClient"]

T = TypeVar("T")


class AsyncSdkClient:
    """The SDK over HTTP for asyncio applications; ``urls`` is one node's URL or several."""

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str,
        *,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        check_version: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: how to reach the node other than over the network (an app of the
        same process, ``httpx.ASGITransport``)."""
        # A node in the same process (httpx.ASGITransport, WSGITransport): every try of a write
        # refused during a handover reaches that node again, so none is made after a pause.
        local = isinstance(transport, httpx.ASGITransport | httpx.WSGITransport)
        self._plan = Plan(
            urls, api_key, check_version=check_version, pauses=() if local else HANDOVER_PAUSES
        )
        self._http = httpx.AsyncClient(
            timeout=timeout, verify=verify, transport=transport or Pools(verify)
        )

    async def __aenter__(self) -> AsyncSdkClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T], *, request_id: str | None = None) -> T:
        """Send one call (see ``Requests``) and return its typed answer."""
        flow = self._plan.flow(call, request_id)
        attempt = next(flow)
        while True:
            if attempt.pause:
                await asyncio.sleep(attempt.pause)
            try:
                r = await self._http.request(**attempt.options())
                reply: Reply | httpx.HTTPError = Reply(r.status_code, r.content)
            except httpx.HTTPError as exc:
                reply = exc
            try:
                attempt = flow.send(reply)
            except StopIteration as done:
                return cast(T, done.value)

    # -- the routes -------------------------------------------------------------------------

    async def version(self) -> VersionInfo:
        return await self.send(Requests.version())

    async def ready(self) -> bool:
        try:
            return (await self.send(Requests.ready())).status == "ready"
        except OpenMfaError:
            return False

    async def authenticate(
        self,
        user: str,
        code: str = "",
        *,
        push: bool = False,
        source: str = "",
        request_id: str | None = None,
    ) -> DecisionView:
        call = Requests.authenticate(user, code, push=push, source=source)
        return await self.send(call, request_id=request_id)

    async def push_outcome(self, push_id: str, *, wait: int = 0) -> PushOutcome:
        return await self.send(Requests.push_outcome(push_id, wait=wait))

    async def portal_sign_in(
        self,
        user: str,
        password: str,
        *,
        address: str = "",
        agent: str = "",
        purpose: str = "",
        remembered: str = "",
    ) -> PortalStep:
        return await self.send(
            Requests.portal_sign_in(
                user, password, address=address, agent=agent, purpose=purpose, remembered=remembered
            )
        )

    async def portal_second_factor(
        self,
        ticket: str,
        code: str,
        *,
        address: str = "",
        agent: str = "",
        remember: bool = False,
        pin: str = "",
    ) -> PortalStep:
        return await self.send(
            Requests.portal_second_factor(
                ticket, code, address=address, agent=agent, remember=remember, pin=pin
            )
        )

    async def portal_push(
        self, ticket: str, *, address: str = "", agent: str = "", pin: str = ""
    ) -> PortalStep:
        return await self.send(Requests.portal_push(ticket, address=address, agent=agent, pin=pin))

    async def portal_push_collect(
        self, ticket: str, push_id: str, *, wait: int = 0, remember: bool = False
    ) -> PortalStep:
        return await self.send(
            Requests.portal_push_collect(ticket, push_id, wait=wait, remember=remember)
        )

    async def portal_me(self, session: str, *, purpose: str = "", address: str = "") -> PortalMe:
        return await self.send(Requests.portal_me(session, purpose=purpose, address=address))

    async def portal_totp_start(self, session: str, label: str = "") -> PortalTotpOffer:
        return await self.send(Requests.portal_totp_start(session, label))

    async def portal_totp_confirm(
        self, session: str, offer: str, code: str, *, address: str = "", agent: str = ""
    ) -> MethodView:
        return await self.send(
            Requests.portal_totp_confirm(session, offer, code, address=address, agent=agent)
        )

    async def portal_remove_method(
        self, session: str, method_id: str, *, address: str = "", agent: str = ""
    ) -> None:
        await self.send(
            Requests.portal_remove_method(session, method_id, address=address, agent=agent)
        )

    async def portal_activation(
        self, session: str, label: str = "", *, address: str = "", agent: str = ""
    ) -> ActivationCode:
        return await self.send(
            Requests.portal_activation(session, label, address=address, agent=agent)
        )

    async def portal_sign_ins(self, session: str, limit: int = 20) -> list[AuditView]:
        return (await self.send(Requests.portal_sign_ins(session, limit))).events

    async def portal_passkey_options(self, ticket: str, origin: str) -> PasskeyChallenge:
        return await self.send(Requests.portal_passkey_options(ticket, origin))

    async def oidc_provider(self) -> OidcProviderInfo:
        """The OpenID Connect provider's discovery document and JWKS, for a portal to publish."""
        return await self.send(OidcRequests.oidc_provider())

    async def oidc_check(self, client_id: str, redirect_uri: str) -> OidcClientChecked:
        """The client of an authorization request, its redirect URI registered (else
        ``InvalidClient`` / ``OAuthRefused``)."""
        return await self.send(OidcRequests.oidc_check(client_id, redirect_uri))

    async def oidc_code(
        self, session: str, request: OidcCodeRequest, *, address: str = "", agent: str = ""
    ) -> OidcCodeIssued:
        """A one-use authorization code for the signed-in person (``OAuthRefused`` if not)."""
        return await self.send(
            OidcRequests.oidc_code(session, request, address=address, agent=agent)
        )

    async def oidc_token(self, request: OidcTokenRequest) -> OidcTokens:
        """The token request -> the ID token (``InvalidGrant``, ``InvalidClient`` … if not)."""
        return await self.send(OidcRequests.oidc_token(request))

    async def oidc_eam_start(self, request: OidcEamStart) -> OidcEamStarted:
        """Entra ID's external authentication request -> the person and a second-factor ticket."""
        return await self.send(OidcRequests.oidc_eam_start(request))

    async def oidc_eam_finish(self, session: str, request: str) -> OidcEamAnswer:
        """After the second factor: the ID token to POST back to Entra ID."""
        return await self.send(OidcRequests.oidc_eam_finish(session, request))

    async def portal_passkey(
        self,
        ticket: str,
        challenge: str,
        credential: str,
        *,
        address: str = "",
        agent: str = "",
        remember: bool = False,
    ) -> PortalStep:
        return await self.send(
            Requests.portal_passkey(
                ticket, challenge, credential, address=address, agent=agent, remember=remember
            )
        )

    async def portal_passkey_register_options(self, session: str, origin: str) -> PasskeyChallenge:
        return await self.send(Requests.portal_passkey_register_options(session, origin))

    async def portal_passkey_register(
        self,
        session: str,
        challenge: str,
        credential: str,
        label: str = "",
        *,
        address: str = "",
        agent: str = "",
    ) -> MethodView:
        return await self.send(
            Requests.portal_passkey_register(
                session, challenge, credential, label, address=address, agent=agent
            )
        )

    async def portal_set_phone(self, session: str, phone: str) -> UserView:
        return await self.send(Requests.portal_set_phone(session, phone))

    async def portal_bypass(
        self, session: str, *, address: str = "", agent: str = ""
    ) -> BypassGranted:
        return await self.send(Requests.portal_bypass(session, address=address, agent=agent))

    async def portal_password_policy(self, session: str) -> PasswordPolicy:
        """Where the signed-in user's password can be changed, what a new one needs."""
        return await self.send(Requests.portal_password_policy(session))

    async def portal_change_password(
        self, session: str, current: str, new: str, *, address: str = "", agent: str = ""
    ) -> PasswordChanged:
        """The signed-in user's new password (``changed``: this session's new token)."""
        return await self.send(
            Requests.portal_change_password(session, current, new, address=address, agent=agent)
        )

    async def adapter_verify(self, user: str, code: str) -> bool:
        return (await self.send(Requests.adapter_verify(user, code))).result

    async def component_report(self, report: ComponentReport) -> ComponentReply:
        return await self.send(Requests.component_report(report))

    async def portal_set_default(self, session: str, method_id: str) -> UserView:
        return await self.send(Requests.portal_set_default(session, method_id))

    async def portal_rename_method(self, session: str, method_id: str, label: str) -> MethodView:
        """The signed-in user's name for one of their methods ("Work phone")."""
        return await self.send(Requests.portal_rename_method(session, method_id, label))

    async def portal_sign_out_everywhere(self, session: str) -> None:
        await self.send(Requests.portal_sign_out_everywhere(session))

    async def portal_sign_out(self, session: str) -> None:
        await self.send(Requests.portal_sign_out(session))

    async def portal_seen(
        self,
        session: str,
        address: str,
        user_agent: str,
        earlier: list[str] | None = None,
        language: str = "",
    ) -> SessionSeen:
        """Report the signed-in browser (its address and user agent; ``earlier``: the node
        sessions it held before this one), at most once a minute."""
        return await self.send(
            Requests.portal_seen(session, address, user_agent, earlier or [], language)
        )

    async def portal_sessions(self, session: str) -> list[SessionView]:
        """Where the signed-in user is signed in: their browsers, newest seen first."""
        return (await self.send(Requests.portal_sessions(session))).sessions

    async def portal_sessions_and_remembered(self, session: str) -> SessionList:
        """Where the signed-in user is signed in and their remembered browsers, in one call
        (``remembered`` is None from a node that does not say: ask ``portal_remembered``)."""
        return await self.send(Requests.portal_sessions_and_remembered(session))

    async def portal_end_session(self, session: str, ref: str) -> None:
        """End one of the signed-in user's browsers (``SessionView.id``) on every host."""
        await self.send(Requests.portal_end_session(session, ref))

    async def portal_remembered(self, session: str) -> list[RememberedView]:
        """The signed-in user's remembered browsers (they skip the second step), newest first."""
        return (await self.send(Requests.portal_remembered(session))).browsers

    async def portal_forget_remembered(self, session: str, ref: str) -> None:
        """Forget one of the signed-in user's remembered browsers (``RememberedView.id``)."""
        await self.send(Requests.portal_forget_remembered(session, ref))

    async def portal_cookies_seen(self, seen: list[tuple[str, str]]) -> None:
        """Forward-auth's reports: (user, session) of each cookie it let through."""
        await self.send(Requests.portal_cookies_seen(seen))

    async def portal_end_sessions(self, user: str, sessions: list[str]) -> None:
        await self.send(Requests.portal_end_sessions(user, sessions))

    async def portal_sessions_ended(self, after: int) -> SessionsEnded:
        return await self.send(Requests.portal_sessions_ended(after))

    async def portal_backup_codes(
        self, session: str, *, address: str = "", agent: str = ""
    ) -> Enrollment:
        return await self.send(Requests.portal_backup_codes(session, address=address, agent=agent))

    async def portal_claim_token(self, session: str, serial: str, code: str) -> MethodView:
        return await self.send(Requests.portal_claim_token(session, serial, code))

    async def list_tokens(
        self, *, unassigned: bool = False, limit: int = 100, after: str = ""
    ) -> list[TokenView]:
        """The token inventory (``unassigned``: only tokens nobody has yet)."""
        call = Requests.list_tokens(unassigned=unassigned, limit=limit, after=after)
        return (await self.send(call)).tokens

    async def assign_token(self, serial: str, user: str) -> MethodView:
        """Give an inventory token to ``user``; it becomes one of their methods."""
        return await self.send(Requests.assign_token(serial, user))

    async def remove_token(self, serial: str) -> None:
        await self.send(Requests.remove_token(serial))

    async def issue_activation(self, name: str, label: str = "") -> ActivationCode:
        return await self.send(Requests.issue_activation(name, label))

    async def list_devices(self, name: str) -> list[DeviceView]:
        return (await self.send(Requests.list_devices(name))).devices

    async def revoke_device(self, name: str, device_id: str) -> None:
        await self.send(Requests.revoke_device(name, device_id))

    async def activate_device(
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
        return await self.send(call)

    async def poll_device(self, payload: str, signature: str) -> DevicePoll:
        return await self.send(Requests.poll_device(payload, signature))

    async def answer_push(self, payload: str, signature: str, unlock: str = "") -> PushOutcome:
        """A device's signed answer; ``unlock``: the screen lock's assertion (an approval
        needs it where the node's ``[mobile] require_unlock`` is on)."""
        return await self.send(Requests.answer_push(payload, signature, unlock))

    async def push_events(self, boot: str = "", after: int = 0, *, wait: int = 0) -> PushEvents:
        return await self.send(Requests.push_events(boot, after, wait=wait))

    async def create_user(
        self, name: str, *, display_name: str = "", email: str = "", phone: str = ""
    ) -> UserView:
        return await self.send(
            Requests.create_user(name, display_name=display_name, email=email, phone=phone)
        )

    async def get_user(self, name: str) -> UserView:
        return await self.send(Requests.get_user(name))

    async def list_users(self, *, limit: int = 100, after: str = "") -> list[UserView]:
        return (await self.send(Requests.list_users(limit=limit, after=after))).users

    async def find_users(self, email: str) -> list[UserView]:
        """Everyone with this email address (case and spaces around it ignored)."""
        return (await self.send(Requests.find_users(email))).users

    async def update_user(
        self,
        name: str,
        *,
        display_name: str | UnsetType = UNSET,
        email: str | UnsetType = UNSET,
        phone: str | UnsetType = UNSET,
        enabled: bool | UnsetType = UNSET,
    ) -> UserView:
        return await self.send(
            Requests.update_user(
                name, display_name=display_name, email=email, phone=phone, enabled=enabled
            )
        )

    async def delete_user(self, name: str) -> None:
        await self.send(Requests.delete_user(name))

    async def export_user(self, name: str) -> PersonalData:
        """Everything held about ``name``: account, methods and devices, audit records."""
        return await self.send(PrivacyRequests.export_user(name))

    async def erase_user(self, name: str) -> str:
        """Erase ``name``; the pseudonym their audit records carry now."""
        return (await self.send(PrivacyRequests.erase_user(name))).pseudonym

    async def add_user_group(self, name: str, group: str) -> UserView:
        """Put ``name`` in ``group`` by hand (data format 11)."""
        return await self.send(Requests.add_user_group(name, group))

    async def remove_user_group(self, name: str, group: str) -> UserView:
        """Take ``name`` out of ``group`` they were put in by hand."""
        return await self.send(Requests.remove_user_group(name, group))

    async def set_user_pin(self, name: str, pin: str) -> UserView:
        """Set ``name``'s PIN (4 to 12 digits; data format 13)."""
        return await self.send(Requests.set_user_pin(name, pin))

    async def clear_user_pin(self, name: str) -> UserView:
        """Clear ``name``'s PIN."""
        return await self.send(Requests.clear_user_pin(name))

    async def unlock_user(self, name: str) -> UserView:
        return await self.send(Requests.unlock_user(name))

    async def bypass(self, name: str, seconds: int) -> float:
        return (await self.send(Requests.bypass(name, seconds))).bypass_until

    async def list_methods(self, name: str) -> list[MethodView]:
        return (await self.send(Requests.list_methods(name))).methods

    async def enroll(
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
        return await self.send(
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

    async def remove_method(self, name: str, method_id: str) -> None:
        await self.send(Requests.remove_method(name, method_id))

    async def resync(self, name: str, method_id: str, first: str, second: str) -> bool:
        return (await self.send(Requests.resync(name, method_id, first, second))).resynchronised

    async def audit(
        self,
        *,
        user: str | None = None,
        since: float | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[AuditView]:
        call = Requests.audit(user=user, since=since, limit=limit, after_id=after_id)
        return (await self.send(call)).events

    async def dashboard(self) -> Dashboard:
        """The last 24 hours at a glance (audit:read)."""
        return await self.send(Requests.dashboard())

    async def month_report(self, month: str | None = None) -> MonthReport:
        """A month's report, YYYY-MM (UTC; this month when None)."""
        return await self.send(Requests.month_report(month))

    async def radius_stats(self) -> RadiusStats:
        return await self.send(Requests.radius_stats())
