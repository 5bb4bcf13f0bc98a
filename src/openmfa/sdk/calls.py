"""Every SDK call as a value: method, path, query, body, answer type; no I/O.

``Requests`` is the one request builder: ``SdkClient`` and ``AsyncSdkClient`` send what it
builds, through the same plan (``openmfa.sdk.plan``). Each builder is one route of the SDK's
OpenAPI document (a test holds them to it), so a route is written down once for both clients.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from .call import Call, _mine, _seg
from .headers import SESSION_HEADER, _origin
from .models import (
    ActivationCode,
    ActivationRequest,
    AdapterResult,
    AdapterVerify,
    AuditPage,
    AuthenticateRequest,
    BypassGranted,
    BypassRequest,
    ComponentReply,
    ComponentReport,
    CookieSeen,
    Dashboard,
    DecisionView,
    DeviceActivate,
    DeviceActivated,
    DeviceList,
    DevicePoll,
    Enrollment,
    Health,
    MethodCreate,
    MethodList,
    MethodView,
    MonthReport,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PasswordChanged,
    PasswordPolicy,
    PinSet,
    PortalCookiesSeen,
    PortalDefault,
    PortalMe,
    PortalMethodName,
    PortalPasswordChange,
    PortalPhone,
    PortalSecondFactor,
    PortalSeen,
    PortalSessionsEnd,
    PortalSignIn,
    PortalStep,
    PortalTotpConfirm,
    PortalTotpOffer,
    PortalTotpStart,
    PushEvents,
    PushOutcome,
    RadiusStats,
    RememberedList,
    Resynchronised,
    ResyncRequest,
    SessionList,
    SessionSeen,
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
    WebPushSubscription,
)

__all__ = ["SESSION_HEADER", "Call", "Requests"]

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


class Requests:
    """Every route of the SDK as a ``Call`` (the one request builder both clients use)."""

    @staticmethod
    def health() -> Call[Health]:
        return Call("GET", "/healthz", Health)

    @staticmethod
    def ready() -> Call[Health]:
        return Call("GET", "/readyz", Health)

    @staticmethod
    def version() -> Call[VersionInfo]:
        return Call("GET", "/version", VersionInfo)

    @staticmethod
    def authenticate(
        user: str, code: str = "", *, push: bool = False, source: str = ""
    ) -> Call[DecisionView]:
        body = _encode(
            AuthenticateRequest(user=user, code=code, method="push" if push else "", source=source)
        )
        # A push lives at the farm's master: it follows not_master like a write.
        kind: Literal["write", "authenticate"] = "write" if push else "authenticate"
        return Call("POST", "/v1/authenticate", DecisionView, body=body, kind=kind)

    @staticmethod
    def push_outcome(push_id: str, *, wait: int = 0) -> Call[PushOutcome]:
        """Where a push request stands; ``wait`` seconds (0 to 60): until the phone answers."""
        return Call(
            "GET",
            f"/v1/authenticate/{_seg(push_id)}",
            PushOutcome,
            params={"wait": wait},
            kind="write",  # at the farm's master
            timeout=wait + 10.0,
        )

    @staticmethod
    def portal_sign_in(
        user: str, password: str, *, address: str = "", agent: str = "", purpose: str = "",
        remembered: str = "",
    ) -> Call[PortalStep]:  # fmt: skip
        """``address``, ``agent``: the browser's address and user agent (``ADDRESS_HEADER``);
        ``purpose``: what the sign-in is for (``FOR_HEADER``: "" the portal itself);
        ``remembered``: the browser's remember cookie (``REMEMBERED_HEADER``)."""
        body = _encode(PortalSignIn(user=user, password=password))
        return Call(
            "POST", "/v1/portal/sign-in", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent, purpose, remembered),
        )  # fmt: skip

    @staticmethod
    def portal_second_factor(
        ticket: str,
        code: str,
        *,
        address: str = "",
        agent: str = "",
        remember: bool = False,
        pin: str = "",
    ) -> Call[PortalStep]:
        body = _encode(PortalSecondFactor(ticket=ticket, code=code, remember=remember, pin=pin))
        return Call(
            "POST", "/v1/portal/second-factor", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def portal_push(
        ticket: str, *, address: str = "", agent: str = "", pin: str = ""
    ) -> Call[PortalStep]:
        body = _encode(PortalSecondFactor(ticket=ticket, method="push", pin=pin))
        return Call(
            "POST", "/v1/portal/second-factor", PortalStep, body=body, kind="write",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def portal_push_collect(
        ticket: str, push_id: str, *, wait: int = 0, remember: bool = False
    ) -> Call[PortalStep]:
        body = _encode(
            PortalSecondFactor(ticket=ticket, push_id=push_id, wait=wait, remember=remember)
        )
        return Call(
            "POST", "/v1/portal/second-factor", PortalStep, body=body, kind="write",
            timeout=wait + 10.0,
        )  # fmt: skip

    @staticmethod
    def portal_me(session: str, *, purpose: str = "", address: str = "") -> Call[PortalMe]:
        """``purpose`` (``FOR_HEADER``'s value, ``forward-auth``) and the browser's ``address``:
        the node says whether the session stands for it (``PortalMe.step_up``)."""
        headers = {SESSION_HEADER: session, **_origin(address, "", purpose)}
        return Call("GET", "/v1/portal/me", PortalMe, headers=headers)

    @staticmethod
    def portal_totp_start(session: str, label: str = "") -> Call[PortalTotpOffer]:
        body = _encode(PortalTotpStart(label=label))
        return _mine("POST", "/v1/portal/me/totp", PortalTotpOffer, session, body)

    @staticmethod
    def portal_totp_confirm(
        session: str, offer: str, code: str, *, address: str = "", agent: str = ""
    ) -> Call[MethodView]:
        body = _encode(PortalTotpConfirm(offer=offer, code=code))
        return _mine(
            "POST", "/v1/portal/me/totp/confirm", MethodView, session, body,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def portal_remove_method(
        session: str, method_id: str, *, address: str = "", agent: str = ""
    ) -> Call[None]:
        return _mine(
            "DELETE", f"/v1/portal/me/methods/{_seg(method_id)}", None, session,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def portal_activation(
        session: str, label: str = "", *, address: str = "", agent: str = ""
    ) -> Call[ActivationCode]:
        body = _encode(ActivationRequest(label=label))
        return _mine(
            "POST", "/v1/portal/me/devices/activation", ActivationCode, session, body,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def portal_sign_ins(session: str, limit: int = 20) -> Call[AuditPage]:
        return Call(
            "GET", "/v1/portal/me/sign-ins", AuditPage, params={"limit": limit},
            headers={SESSION_HEADER: session},
        )  # fmt: skip

    @staticmethod
    def portal_passkey_options(ticket: str, origin: str) -> Call[PasskeyChallenge]:
        body = _encode(PasskeyOptions(origin=origin, ticket=ticket))
        return Call("POST", "/v1/portal/passkey/options", PasskeyChallenge, body=body)

    @staticmethod
    def portal_passkey(
        ticket: str, challenge: str, credential: str, *, address: str = "", agent: str = "",
        remember: bool = False,
    ) -> Call[PortalStep]:  # fmt: skip
        body = _encode(
            PasskeyAnswer(
                challenge=challenge, credential=credential, ticket=ticket, remember=remember
            )
        )
        return Call(
            "POST", "/v1/portal/passkey", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def portal_passkey_register_options(session: str, origin: str) -> Call[PasskeyChallenge]:
        body = _encode(PasskeyOptions(origin=origin))
        return _mine("POST", "/v1/portal/me/passkeys/options", PasskeyChallenge, session, body)

    @staticmethod
    def portal_passkey_register(
        session: str,
        challenge: str,
        credential: str,
        label: str = "",
        *,
        address: str = "",
        agent: str = "",
    ) -> Call[MethodView]:
        body = _encode(PasskeyAnswer(challenge=challenge, credential=credential, label=label))
        return _mine(
            "POST", "/v1/portal/me/passkeys", MethodView, session, body,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def portal_set_phone(session: str, phone: str) -> Call[UserView]:
        body = _encode(PortalPhone(phone=phone))
        return _mine("PUT", "/v1/portal/me/phone", UserView, session, body)

    @staticmethod
    def portal_bypass(session: str, *, address: str = "", agent: str = "") -> Call[BypassGranted]:
        return _mine(
            "POST", "/v1/portal/me/bypass", BypassGranted, session, address=address, agent=agent
        )

    @staticmethod
    def portal_password_policy(session: str) -> Call[PasswordPolicy]:
        return _mine("GET", "/v1/portal/me/password", PasswordPolicy, session)

    @staticmethod
    def portal_change_password(
        session: str, current: str, new: str, *, address: str = "", agent: str = ""
    ) -> Call[PasswordChanged]:
        body = _encode(PortalPasswordChange(current=current, new=new))
        return _mine(
            "POST", "/v1/portal/me/password", PasswordChanged, session, body,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def adapter_verify(user: str, code: str) -> Call[AdapterResult]:
        body = _encode(AdapterVerify(user=user, code=code))
        return Call("POST", "/v1/adapter/verify", AdapterResult, body=body, kind="authenticate")

    @staticmethod
    def portal_set_default(session: str, method_id: str) -> Call[UserView]:
        body = _encode(PortalDefault(method_id=method_id))
        return _mine("PUT", "/v1/portal/me/default", UserView, session, body)

    @staticmethod
    def portal_rename_method(session: str, method_id: str, label: str) -> Call[MethodView]:
        body = _encode(PortalMethodName(label=label))
        path = f"/v1/portal/me/methods/{_seg(method_id)}/name"
        return _mine("PUT", path, MethodView, session, body)

    @staticmethod
    def portal_sign_out_everywhere(session: str) -> Call[None]:
        return _mine("POST", "/v1/portal/me/sign-out-everywhere", None, session)

    @staticmethod
    def portal_sign_out(session: str) -> Call[None]:
        return _mine("POST", "/v1/portal/me/sign-out", None, session)

    @staticmethod
    def portal_seen(
        session: str, address: str, user_agent: str, earlier: list[str], language: str = ""
    ) -> Call[SessionSeen]:
        body = _encode(
            PortalSeen(address=address, user_agent=user_agent, earlier=earlier, language=language)
        )
        return _mine("POST", "/v1/portal/me/seen", SessionSeen, session, body)

    @staticmethod
    def portal_cookies_seen(seen: list[tuple[str, str]]) -> Call[None]:
        """Forward-auth's reports: (user, session) of each cookie it let through."""
        body = _encode(PortalCookiesSeen(seen=[CookieSeen(user=u, session=s) for u, s in seen]))
        return Call("POST", "/v1/portal/sessions/seen", None, body=body, kind="write")

    @staticmethod
    def portal_sessions(session: str) -> Call[SessionList]:
        return _mine("GET", "/v1/portal/me/sessions", SessionList, session)  # at the master

    @staticmethod
    def portal_sessions_and_remembered(session: str) -> Call[SessionList]:
        return Requests.portal_sessions(session)  # the same answer, whole

    @staticmethod
    def portal_end_session(session: str, ref: str) -> Call[None]:
        return _mine("DELETE", f"/v1/portal/me/sessions/{_seg(ref)}", None, session)

    @staticmethod
    def portal_remembered(session: str) -> Call[RememberedList]:
        return _mine("GET", "/v1/portal/me/remembered", RememberedList, session)  # at the master

    @staticmethod
    def portal_forget_remembered(session: str, ref: str) -> Call[None]:
        return _mine("DELETE", f"/v1/portal/me/remembered/{_seg(ref)}", None, session)

    @staticmethod
    def portal_end_sessions(user: str, sessions: list[str]) -> Call[None]:
        body = _encode(PortalSessionsEnd(user=user, sessions=sessions))
        return Call("POST", "/v1/portal/sessions/end", None, body=body, kind="write")

    @staticmethod
    def portal_sessions_ended(after: int) -> Call[SessionsEnded]:
        return Call("GET", "/v1/portal/sessions/ended", SessionsEnded, params={"after": after})

    @staticmethod
    def portal_backup_codes(
        session: str, *, address: str = "", agent: str = ""
    ) -> Call[Enrollment]:
        return _mine(
            "POST", "/v1/portal/me/backup-codes", Enrollment, session,
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def portal_claim_token(session: str, serial: str, code: str) -> Call[MethodView]:
        body = _encode(TokenClaim(serial=serial, code=code))
        return _mine("POST", "/v1/portal/me/tokens", MethodView, session, body)

    @staticmethod
    def list_tokens(
        *, unassigned: bool = False, limit: int = 100, after: str = ""
    ) -> Call[TokenPage]:
        params: dict[str, str | int | float] = {"limit": limit, "after": after}
        if unassigned:
            params["unassigned"] = "true"
        return Call("GET", "/v1/tokens", TokenPage, params=params)

    @staticmethod
    def assign_token(serial: str, user: str) -> Call[MethodView]:
        body = _encode(TokenAssign(user=user))
        path = f"/v1/tokens/{_seg(serial)}/assign"
        return Call("POST", path, MethodView, body=body, kind="write")

    @staticmethod
    def remove_token(serial: str) -> Call[None]:
        return Call("DELETE", f"/v1/tokens/{_seg(serial)}", None, kind="write")

    @staticmethod
    def issue_activation(name: str, label: str = "") -> Call[ActivationCode]:
        body = _encode(ActivationRequest(label=label))
        path = f"/v1/users/{_seg(name)}/devices/activation"
        return Call("POST", path, ActivationCode, body=body, kind="write")

    @staticmethod
    def list_devices(name: str) -> Call[DeviceList]:
        return Call("GET", f"/v1/users/{_seg(name)}/devices", DeviceList)

    @staticmethod
    def revoke_device(name: str, device_id: str) -> Call[None]:
        path = f"/v1/users/{_seg(name)}/devices/{_seg(device_id)}"
        return Call("DELETE", path, None, kind="write")

    @staticmethod
    def activate_device(
        code: str,
        alg: str,
        public_key: str,
        *,
        label: str = "",
        webpush: WebPushSubscription | None = None,
        unlock: str = "",
    ) -> Call[DeviceActivated]:
        body = _encode(
            DeviceActivate(
                code=code,
                alg=alg,  # type: ignore[arg-type]
                public_key=public_key,
                label=label,
                webpush=webpush,
                unlock=unlock,
            )
        )
        return Call("POST", "/v1/devices", DeviceActivated, body=body, kind="write")

    @staticmethod
    def poll_device(payload: str, signature: str) -> Call[DevicePoll]:
        body = _encode(SignedMessage(payload=payload, signature=signature))
        return Call("POST", "/v1/devices/poll", DevicePoll, body=body, kind="write")

    @staticmethod
    def answer_push(payload: str, signature: str, unlock: str = "") -> Call[PushOutcome]:
        body = _encode(SignedMessage(payload=payload, signature=signature, unlock=unlock))
        return Call("POST", "/v1/push/answer", PushOutcome, body=body, kind="write")

    @staticmethod
    def push_events(boot: str = "", after: int = 0, *, wait: int = 0) -> Call[PushEvents]:
        params: dict[str, str | int | float] = {"boot": boot, "after": after, "wait": wait}
        return Call(
            "GET", "/v1/push/events", PushEvents, params=params, kind="write", timeout=wait + 10.0
        )

    @staticmethod
    def create_user(
        name: str, *, display_name: str = "", email: str = "", phone: str = ""
    ) -> Call[UserView]:
        body = _encode(UserCreate(name=name, display_name=display_name, email=email, phone=phone))
        return Call("POST", "/v1/users", UserView, body=body, kind="write")

    @staticmethod
    def get_user(name: str) -> Call[UserView]:
        return Call("GET", f"/v1/users/{_seg(name)}", UserView)

    @staticmethod
    def find_users(email: str) -> Call[UserPage]:
        return Call("GET", "/v1/users", UserPage, params={"email": email})

    @staticmethod
    def list_users(*, limit: int = 100, after: str = "") -> Call[UserPage]:
        return Call("GET", "/v1/users", UserPage, params={"limit": limit, "after": after})

    @staticmethod
    def update_user(
        name: str,
        *,
        display_name: str | UnsetType = UNSET,
        email: str | UnsetType = UNSET,
        phone: str | UnsetType = UNSET,
        enabled: bool | UnsetType = UNSET,
    ) -> Call[UserView]:
        patch = UserPatch(display_name=display_name, email=email, phone=phone, enabled=enabled)
        return Call("PATCH", f"/v1/users/{_seg(name)}", UserView, body=_encode(patch), kind="write")

    @staticmethod
    def delete_user(name: str) -> Call[None]:
        return Call[None]("DELETE", f"/v1/users/{_seg(name)}", None, kind="write")

    @staticmethod
    def add_user_group(name: str, group: str) -> Call[UserView]:
        path = f"/v1/users/{_seg(name)}/groups/{_seg(group)}"
        return Call("PUT", path, UserView, kind="write")

    @staticmethod
    def remove_user_group(name: str, group: str) -> Call[UserView]:
        path = f"/v1/users/{_seg(name)}/groups/{_seg(group)}"
        return Call("DELETE", path, UserView, kind="write")

    @staticmethod
    def set_user_pin(name: str, pin: str) -> Call[UserView]:
        body = _encode(PinSet(pin=pin))
        return Call("PUT", f"/v1/users/{_seg(name)}/pin", UserView, body=body, kind="write")

    @staticmethod
    def clear_user_pin(name: str) -> Call[UserView]:
        return Call("DELETE", f"/v1/users/{_seg(name)}/pin", UserView, kind="write")

    @staticmethod
    def unlock_user(name: str) -> Call[UserView]:
        return Call("POST", f"/v1/users/{_seg(name)}/unlock", UserView, kind="write")

    @staticmethod
    def bypass(name: str, seconds: int) -> Call[BypassGranted]:
        body = _encode(BypassRequest(seconds=seconds))
        return Call(
            "POST", f"/v1/users/{_seg(name)}/bypass", BypassGranted, body=body, kind="write"
        )

    @staticmethod
    def list_methods(name: str) -> Call[MethodList]:
        return Call("GET", f"/v1/users/{_seg(name)}/methods", MethodList)

    @staticmethod
    def enroll(
        name: str,
        kind: Literal["totp", "hotp", "backup-codes"],
        *,
        secret: str | None = None,
        digits: Literal[6, 8] | None = None,
        period: Literal[30, 60] | None = None,
        algorithm: Literal["SHA1", "SHA256", "SHA512"] | None = None,
        label: str = "",
    ) -> Call[Enrollment]:
        body = _encode(MethodCreate(
            kind=kind, secret=secret, digits=digits, period=period, algorithm=algorithm, label=label
        ))  # fmt: skip
        return Call("POST", f"/v1/users/{_seg(name)}/methods", Enrollment, body=body, kind="write")

    @staticmethod
    def remove_method(name: str, method_id: str) -> Call[None]:
        path = f"/v1/users/{_seg(name)}/methods/{_seg(method_id)}"
        return Call[None]("DELETE", path, None, kind="write")

    @staticmethod
    def resync(name: str, method_id: str, first: str, second: str) -> Call[Resynchronised]:
        path = f"/v1/users/{_seg(name)}/methods/{_seg(method_id)}/resync"
        body = _encode(ResyncRequest(first=first, second=second))
        return Call("POST", path, Resynchronised, body=body, kind="write")

    @staticmethod
    def audit(
        *, user: str | None = None, since: float | None = None, limit: int = 100, after_id: int = 0
    ) -> Call[AuditPage]:
        params: dict[str, str | int | float] = {"limit": limit, "after_id": after_id}
        if user is not None:
            params["user"] = user
        if since is not None:
            params["since"] = since
        return Call("GET", "/v1/audit", AuditPage, params=params)

    @staticmethod
    def dashboard() -> Call[Dashboard]:
        return Call("GET", "/v1/reports/dashboard", Dashboard)

    @staticmethod
    def month_report(month: str | None = None) -> Call[MonthReport]:
        params: dict[str, str | int | float] = {} if month is None else {"month": month}
        return Call("GET", "/v1/reports/month", MonthReport, params=params)

    @staticmethod
    def radius_stats() -> Call[RadiusStats]:
        return Call("GET", "/v1/radius/stats", RadiusStats)

    @staticmethod
    def component_report(report: ComponentReport) -> Call[ComponentReply]:
        return Call("POST", "/v1/components/report", ComponentReply, body=_encode(report))
