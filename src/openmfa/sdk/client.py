"""Typed Python clients for the Web Service SDK, synchronous and asynchronous.

The User Portal, the Mobile App Web Service and the identity-provider adapters talk to a node
only through these clients (they hold an API key, never database credentials)::

    with SdkClient(["https://mfa1:8480", "https://mfa2:8480"], api_key) as sdk:
        decision = sdk.authenticate("alice", "123456")
        if decision.accepted: ...

    async with AsyncSdkClient("https://mfa1:8480", api_key) as sdk:
        user = await sdk.get_user("alice")

Both are thin: ``Requests`` builds every call (method, path, query, body, answer type) without
any I/O, and ``_Plan`` decides, from what a node answered, whether a call is done, goes to the
next node, or follows a farm's master. The clients only move bytes.

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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from msgspec import UNSET, UnsetType

from ..errors import NodeTooOld, NotMaster, OpenMfaError, Unavailable
from .errors import from_answer
from .models import (
    SDK_VERSION,
    ActivationCode,
    ActivationRequest,
    AdapterResult,
    AdapterVerify,
    AuditPage,
    AuditView,
    AuthenticateRequest,
    BypassGranted,
    BypassRequest,
    ComponentReply,
    ComponentReport,
    DecisionView,
    DeviceActivate,
    DeviceActivated,
    DeviceList,
    DevicePoll,
    DeviceView,
    Enrollment,
    Health,
    MethodCreate,
    MethodList,
    MethodView,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
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
    PushEvents,
    PushOutcome,
    RadiusStats,
    Resynchronised,
    ResyncRequest,
    SessionsEnded,
    SignedMessage,
    TokenAssign,
    TokenClaim,
    TokenPage,
    TokenView,
    UserCreate,
    UserPage,
    UserPatch,
    UserView,
    VersionInfo,
    WebPushSubscription,
)

__all__ = ["AsyncSdkClient", "Call", "Requests", "SdkClient"]

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Call(Generic[T]):
    """One SDK call, fully described: what to send and what comes back. No I/O."""

    method: str
    path: str
    answer: type[T] | None
    """None: the call answers nothing (204)."""
    params: dict[str, str | int | float] = field(default_factory=dict)
    body: bytes | None = None
    kind: Literal["read", "write", "authenticate"] = "read"
    timeout: float | None = None
    """Seconds to wait for the answer (long-polls); None: the client's own timeout."""
    headers: dict[str, str] = field(default_factory=dict)
    """This call's own headers (a portal user's session token)."""

    def decode(self, content: bytes) -> T:
        if self.answer is None:
            return None  # type: ignore[return-value]
        return msgspec.json.decode(content, type=self.answer)


SESSION_HEADER = "X-OpenMFA-Session"
"""Where portal calls about the signed-in user carry their session token."""


def _timeout(call: Call[Any]) -> Any:
    return httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout


def _seg(value: str) -> str:
    return quote(value, safe="")


def _mine(
    method: str, path: str, answer: type[T] | None, session: str, body: bytes | None = None
) -> Call[T]:
    """A portal call about the signed-in user: their session token goes with it."""
    return Call(method, path, answer, body=body, kind="write", headers={SESSION_HEADER: session})


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
    def portal_sign_in(user: str, password: str) -> Call[PortalStep]:
        body = _encode(PortalSignIn(user=user, password=password))
        return Call("POST", "/v1/portal/sign-in", PortalStep, body=body, kind="authenticate")

    @staticmethod
    def portal_second_factor(ticket: str, code: str) -> Call[PortalStep]:
        body = _encode(PortalSecondFactor(ticket=ticket, code=code))
        return Call("POST", "/v1/portal/second-factor", PortalStep, body=body, kind="authenticate")

    @staticmethod
    def portal_push(ticket: str) -> Call[PortalStep]:
        body = _encode(PortalSecondFactor(ticket=ticket, method="push"))
        return Call("POST", "/v1/portal/second-factor", PortalStep, body=body, kind="write")

    @staticmethod
    def portal_push_collect(ticket: str, push_id: str, *, wait: int = 0) -> Call[PortalStep]:
        body = _encode(PortalSecondFactor(ticket=ticket, push_id=push_id, wait=wait))
        return Call(
            "POST", "/v1/portal/second-factor", PortalStep, body=body, kind="write",
            timeout=wait + 10.0,
        )  # fmt: skip

    @staticmethod
    def portal_me(session: str) -> Call[PortalMe]:
        return Call("GET", "/v1/portal/me", PortalMe, headers={SESSION_HEADER: session})

    @staticmethod
    def portal_totp_start(session: str, label: str = "") -> Call[PortalTotpOffer]:
        body = _encode(PortalTotpStart(label=label))
        return _mine("POST", "/v1/portal/me/totp", PortalTotpOffer, session, body)

    @staticmethod
    def portal_totp_confirm(session: str, offer: str, code: str) -> Call[MethodView]:
        body = _encode(PortalTotpConfirm(offer=offer, code=code))
        return _mine("POST", "/v1/portal/me/totp/confirm", MethodView, session, body)

    @staticmethod
    def portal_remove_method(session: str, method_id: str) -> Call[None]:
        return _mine("DELETE", f"/v1/portal/me/methods/{_seg(method_id)}", None, session)

    @staticmethod
    def portal_activation(session: str, label: str = "") -> Call[ActivationCode]:
        body = _encode(ActivationRequest(label=label))
        return _mine("POST", "/v1/portal/me/devices/activation", ActivationCode, session, body)

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
    def portal_passkey(ticket: str, challenge: str, credential: str) -> Call[PortalStep]:
        body = _encode(PasskeyAnswer(challenge=challenge, credential=credential, ticket=ticket))
        return Call("POST", "/v1/portal/passkey", PortalStep, body=body, kind="authenticate")

    @staticmethod
    def portal_passkey_register_options(session: str, origin: str) -> Call[PasskeyChallenge]:
        body = _encode(PasskeyOptions(origin=origin))
        return _mine("POST", "/v1/portal/me/passkeys/options", PasskeyChallenge, session, body)

    @staticmethod
    def portal_passkey_register(
        session: str, challenge: str, credential: str, label: str = ""
    ) -> Call[MethodView]:
        body = _encode(PasskeyAnswer(challenge=challenge, credential=credential, label=label))
        return _mine("POST", "/v1/portal/me/passkeys", MethodView, session, body)

    @staticmethod
    def portal_set_phone(session: str, phone: str) -> Call[UserView]:
        body = _encode(PortalPhone(phone=phone))
        return _mine("PUT", "/v1/portal/me/phone", UserView, session, body)

    @staticmethod
    def portal_bypass(session: str) -> Call[BypassGranted]:
        return _mine("POST", "/v1/portal/me/bypass", BypassGranted, session)

    @staticmethod
    def adapter_verify(user: str, code: str) -> Call[AdapterResult]:
        body = _encode(AdapterVerify(user=user, code=code))
        return Call("POST", "/v1/adapter/verify", AdapterResult, body=body, kind="authenticate")

    @staticmethod
    def portal_set_default(session: str, method_id: str) -> Call[UserView]:
        body = _encode(PortalDefault(method_id=method_id))
        return _mine("PUT", "/v1/portal/me/default", UserView, session, body)

    @staticmethod
    def portal_sign_out_everywhere(session: str) -> Call[None]:
        return _mine("POST", "/v1/portal/me/sign-out-everywhere", None, session)

    @staticmethod
    def portal_sign_out(session: str) -> Call[None]:
        return _mine("POST", "/v1/portal/me/sign-out", None, session)

    @staticmethod
    def portal_end_sessions(user: str, sessions: list[str]) -> Call[None]:
        body = _encode(PortalSessionsEnd(user=user, sessions=sessions))
        return Call("POST", "/v1/portal/sessions/end", None, body=body, kind="write")

    @staticmethod
    def portal_sessions_ended(after: int) -> Call[SessionsEnded]:
        return Call("GET", "/v1/portal/sessions/ended", SessionsEnded, params={"after": after})

    @staticmethod
    def portal_backup_codes(session: str) -> Call[Enrollment]:
        return _mine("POST", "/v1/portal/me/backup-codes", Enrollment, session)

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
    ) -> Call[DeviceActivated]:
        body = _encode(
            DeviceActivate(
                code=code,
                alg=alg,  # type: ignore[arg-type]
                public_key=public_key,
                label=label,
                webpush=webpush,
            )
        )
        return Call("POST", "/v1/devices", DeviceActivated, body=body, kind="write")

    @staticmethod
    def poll_device(payload: str, signature: str) -> Call[DevicePoll]:
        body = _encode(SignedMessage(payload=payload, signature=signature))
        return Call("POST", "/v1/devices/poll", DevicePoll, body=body, kind="write")

    @staticmethod
    def answer_push(payload: str, signature: str) -> Call[PushOutcome]:
        body = _encode(SignedMessage(payload=payload, signature=signature))
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
        body = _encode(
            MethodCreate(
                kind=kind,
                secret=secret,
                digits=digits,
                period=period,
                algorithm=algorithm,
                label=label,
            )
        )
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
    def radius_stats() -> Call[RadiusStats]:
        return Call("GET", "/v1/radius/stats", RadiusStats)

    @staticmethod
    def component_report(report: ComponentReport) -> Call[ComponentReply]:
        return Call("POST", "/v1/components/report", ComponentReply, body=_encode(report))


@dataclass
class _Try:
    """What to do after one attempt."""

    value: Any = None
    error: OpenMfaError | None = None
    next_url: str | None = None
    """Where to send it next (a farm's master), or None: done (value or error)."""
    failover: bool = False
    """Try the next node of the list."""


MAX_FOLLOWS = 3
"""How many ``not_master`` answers one call follows: a subordinate not yet told of a handover
names the former master, which names the new one (two); a third is spare, and the bound ends
a loop between nodes that name each other."""


class _Plan:
    """The clients' shared decisions: which node to ask, what an answer means."""

    def __init__(self, urls: str | Sequence[str], api_key: str) -> None:
        listed = [urls] if isinstance(urls, str) else list(urls)
        if not listed:
            raise ValueError("give at least one node URL")
        self.urls = [u.rstrip("/") for u in listed]
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.preferred = 0
        self.master: str | None = None
        self.checked: set[str] = set()

    def order(self, call: Call[Any]) -> list[str]:
        if call.kind == "write" and self.master is not None:
            return [self.master]
        n = len(self.urls)
        return [self.urls[(self.preferred + i) % n] for i in range(n)]

    def headers_for(self, call: Call[Any], request_id: str) -> dict[str, str]:
        headers = {**self.headers, **call.headers, "X-Request-ID": request_id}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def answered(
        self, call: Call[Any], url: str, status: int, content: bytes, *, followed: int = 0
    ) -> _Try:
        """What ``url``'s answer means; ``followed``: how often this call has followed a
        ``not_master`` already (the clients count per call: another call of the same client,
        told the same at the same moment, must not stop this one from following)."""
        if status < 400:
            if url in self.urls:
                self.preferred = self.urls.index(url)
            return _Try(value=call.decode(content))
        try:
            body = msgspec.json.decode(content)
        except msgspec.DecodeError:
            body = None
        error = from_answer(status, body, content.decode(errors="replace"))
        if isinstance(error, NotMaster) and call.kind == "write" and error.master_url:
            master = error.master_url.rstrip("/")
            if master != url and followed < MAX_FOLLOWS:
                self.master = master
                return _Try(next_url=master)
        if status == 503 and call.kind != "write":
            return _Try(error=error, failover=True)
        return _Try(error=error)

    def unreachable(self, call: Call[Any], url: str, exc: httpx.HTTPError) -> _Try:
        error = Unavailable(f"the node at {url} could not be reached: {exc!r}")
        if call.kind == "write" and self.master == url:
            self.master = None  # ask the list again next time
        connect = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        # A read may be repeated anywhere; anything else only if it never reached the node.
        return _Try(error=error, failover=connect or call.method == "GET")

    def check_version(self, url: str, info: VersionInfo) -> None:
        if SDK_VERSION not in info.sdk_versions:
            raise NodeTooOld(
                f"the node at {url} (OpenMFA {info.release}) serves SDK versions "
                f"{info.sdk_versions}; this client speaks version {SDK_VERSION}. Upgrade the "
                "node first (nodes go before the apps that use them)"
            )
        self.checked.add(url)


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
    ) -> None:
        self._plan = _Plan(urls, api_key)
        self._check = check_version
        self._http = httpx.Client(timeout=timeout, verify=verify)

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
        rid = request_id or uuid.uuid4().hex
        last: OpenMfaError = Unavailable("no node was asked")
        queue = self._plan.order(call)
        followed = 0
        while queue:
            url = queue.pop(0)
            try:
                if self._check and url not in self._plan.checked and call.path.startswith("/v1/"):
                    self._plan.check_version(url, self._get(url, Requests.version()))
                r = self._http.request(
                    call.method,
                    url + call.path,
                    params=call.params or None,
                    content=call.body,
                    headers=self._plan.headers_for(call, rid),
                    timeout=_timeout(call),
                )
            except httpx.HTTPError as exc:
                step = self._plan.unreachable(call, url, exc)
            else:
                step = self._plan.answered(call, url, r.status_code, r.content, followed=followed)
            if step.next_url is not None:
                queue, followed = [step.next_url], followed + 1
            elif step.error is None:
                return step.value  # type: ignore[no-any-return]
            else:
                last = step.error
                if not step.failover:
                    break
        raise last

    def _get(self, url: str, call: Call[T]) -> T:
        r = self._http.get(url + call.path, headers=self._plan.headers)
        step = self._plan.answered(call, url, r.status_code, r.content)
        if step.error is not None:
            raise step.error
        return step.value  # type: ignore[no-any-return]

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

    def portal_sign_in(self, user: str, password: str) -> PortalStep:
        """The User Portal's first step (a ``portal`` key): a ticket for the second."""
        return self.send(Requests.portal_sign_in(user, password))

    def portal_second_factor(self, ticket: str, code: str) -> PortalStep:
        """The second step: the user's session token (``.token``) when the code is accepted."""
        return self.send(Requests.portal_second_factor(ticket, code))

    def portal_push(self, ticket: str) -> PortalStep:
        """A push to the user's phone as the second factor: show ``.pending.number``."""
        return self.send(Requests.portal_push(ticket))

    def portal_push_collect(self, ticket: str, push_id: str, *, wait: int = 0) -> PortalStep:
        """Once the phone approved (waiting up to ``wait`` s): the session token."""
        return self.send(Requests.portal_push_collect(ticket, push_id, wait=wait))

    def portal_me(self, session: str) -> PortalMe:
        return self.send(Requests.portal_me(session))

    def portal_totp_start(self, session: str, label: str = "") -> PortalTotpOffer:
        """Offer the signed-in user an authenticator app's secret; saved by ``confirm``."""
        return self.send(Requests.portal_totp_start(session, label))

    def portal_totp_confirm(self, session: str, offer: str, code: str) -> MethodView:
        return self.send(Requests.portal_totp_confirm(session, offer, code))

    def portal_remove_method(self, session: str, method_id: str) -> None:
        self.send(Requests.portal_remove_method(session, method_id))

    def portal_activation(self, session: str, label: str = "") -> ActivationCode:
        return self.send(Requests.portal_activation(session, label))

    def portal_sign_ins(self, session: str, limit: int = 20) -> list[AuditView]:
        return self.send(Requests.portal_sign_ins(session, limit)).events

    def portal_passkey_options(self, ticket: str, origin: str) -> PasskeyChallenge:
        """A passkey sign-in begins: the options for the browser, and a sealed challenge."""
        return self.send(Requests.portal_passkey_options(ticket, origin))

    def portal_passkey(self, ticket: str, challenge: str, credential: str) -> PortalStep:
        """The browser's answer (``PublicKeyCredential.toJSON()`` as JSON text)."""
        return self.send(Requests.portal_passkey(ticket, challenge, credential))

    def portal_passkey_register_options(self, session: str, origin: str) -> PasskeyChallenge:
        return self.send(Requests.portal_passkey_register_options(session, origin))

    def portal_passkey_register(
        self, session: str, challenge: str, credential: str, label: str = ""
    ) -> MethodView:
        return self.send(Requests.portal_passkey_register(session, challenge, credential, label))

    def portal_set_phone(self, session: str, phone: str) -> UserView:
        """The signed-in user's phone number ("" removes it); the node stores E.164."""
        return self.send(Requests.portal_set_phone(session, phone))

    def portal_bypass(self, session: str) -> BypassGranted:
        return self.send(Requests.portal_bypass(session))

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

    def portal_sign_out_everywhere(self, session: str) -> None:
        """End every session of the signed-in user, on every portal (this token too)."""
        self.send(Requests.portal_sign_out_everywhere(session))

    def portal_sign_out(self, session: str) -> None:
        """End this session of the signed-in user (and its forward-auth cookie) everywhere."""
        self.send(Requests.portal_sign_out(session))

    def portal_end_sessions(self, user: str, sessions: list[str]) -> None:
        """End sessions of ``user`` by their ids, on every portal host."""
        self.send(Requests.portal_end_sessions(user, sessions))

    def portal_sessions_ended(self, after: int) -> SessionsEnded:
        """The portal hosts' revocation view: sessions ended since row ``after``."""
        return self.send(Requests.portal_sessions_ended(after))

    def portal_backup_codes(self, session: str) -> Enrollment:
        """New backup codes (``.backup_codes``, shown once); the old ones stop working."""
        return self.send(Requests.portal_backup_codes(session))

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
    ) -> DeviceActivated:
        call = Requests.activate_device(code, alg, public_key, label=label, webpush=webpush)
        return self.send(call)

    def poll_device(self, payload: str, signature: str) -> DevicePoll:
        return self.send(Requests.poll_device(payload, signature))

    def answer_push(self, payload: str, signature: str) -> PushOutcome:
        return self.send(Requests.answer_push(payload, signature))

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

    def radius_stats(self) -> RadiusStats:
        return self.send(Requests.radius_stats())


class AsyncSdkClient:
    """The SDK over HTTP for asyncio applications (the portal, the mobile service)."""

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
        self._plan = _Plan(urls, api_key)
        self._check = check_version
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify, transport=transport)

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
        rid = request_id or uuid.uuid4().hex
        last: OpenMfaError = Unavailable("no node was asked")
        queue = self._plan.order(call)
        followed = 0
        while queue:
            url = queue.pop(0)
            try:
                if self._check and url not in self._plan.checked and call.path.startswith("/v1/"):
                    self._plan.check_version(url, await self._get(url, Requests.version()))
                r = await self._http.request(
                    call.method,
                    url + call.path,
                    params=call.params or None,
                    content=call.body,
                    headers=self._plan.headers_for(call, rid),
                    timeout=_timeout(call),
                )
            except httpx.HTTPError as exc:
                step = self._plan.unreachable(call, url, exc)
            else:
                step = self._plan.answered(call, url, r.status_code, r.content, followed=followed)
            if step.next_url is not None:
                queue, followed = [step.next_url], followed + 1
            elif step.error is None:
                return step.value  # type: ignore[no-any-return]
            else:
                last = step.error
                if not step.failover:
                    break
        raise last

    async def _get(self, url: str, call: Call[T]) -> T:
        r = await self._http.get(url + call.path, headers=self._plan.headers)
        step = self._plan.answered(call, url, r.status_code, r.content)
        if step.error is not None:
            raise step.error
        return step.value  # type: ignore[no-any-return]

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

    async def portal_sign_in(self, user: str, password: str) -> PortalStep:
        return await self.send(Requests.portal_sign_in(user, password))

    async def portal_second_factor(self, ticket: str, code: str) -> PortalStep:
        return await self.send(Requests.portal_second_factor(ticket, code))

    async def portal_push(self, ticket: str) -> PortalStep:
        return await self.send(Requests.portal_push(ticket))

    async def portal_push_collect(self, ticket: str, push_id: str, *, wait: int = 0) -> PortalStep:
        return await self.send(Requests.portal_push_collect(ticket, push_id, wait=wait))

    async def portal_me(self, session: str) -> PortalMe:
        return await self.send(Requests.portal_me(session))

    async def portal_totp_start(self, session: str, label: str = "") -> PortalTotpOffer:
        return await self.send(Requests.portal_totp_start(session, label))

    async def portal_totp_confirm(self, session: str, offer: str, code: str) -> MethodView:
        return await self.send(Requests.portal_totp_confirm(session, offer, code))

    async def portal_remove_method(self, session: str, method_id: str) -> None:
        await self.send(Requests.portal_remove_method(session, method_id))

    async def portal_activation(self, session: str, label: str = "") -> ActivationCode:
        return await self.send(Requests.portal_activation(session, label))

    async def portal_sign_ins(self, session: str, limit: int = 20) -> list[AuditView]:
        return (await self.send(Requests.portal_sign_ins(session, limit))).events

    async def portal_passkey_options(self, ticket: str, origin: str) -> PasskeyChallenge:
        return await self.send(Requests.portal_passkey_options(ticket, origin))

    async def portal_passkey(self, ticket: str, challenge: str, credential: str) -> PortalStep:
        return await self.send(Requests.portal_passkey(ticket, challenge, credential))

    async def portal_passkey_register_options(self, session: str, origin: str) -> PasskeyChallenge:
        return await self.send(Requests.portal_passkey_register_options(session, origin))

    async def portal_passkey_register(
        self, session: str, challenge: str, credential: str, label: str = ""
    ) -> MethodView:
        return await self.send(
            Requests.portal_passkey_register(session, challenge, credential, label)
        )

    async def portal_set_phone(self, session: str, phone: str) -> UserView:
        return await self.send(Requests.portal_set_phone(session, phone))

    async def portal_bypass(self, session: str) -> BypassGranted:
        return await self.send(Requests.portal_bypass(session))

    async def adapter_verify(self, user: str, code: str) -> bool:
        return (await self.send(Requests.adapter_verify(user, code))).result

    async def component_report(self, report: ComponentReport) -> ComponentReply:
        return await self.send(Requests.component_report(report))

    async def portal_set_default(self, session: str, method_id: str) -> UserView:
        return await self.send(Requests.portal_set_default(session, method_id))

    async def portal_sign_out_everywhere(self, session: str) -> None:
        await self.send(Requests.portal_sign_out_everywhere(session))

    async def portal_sign_out(self, session: str) -> None:
        await self.send(Requests.portal_sign_out(session))

    async def portal_end_sessions(self, user: str, sessions: list[str]) -> None:
        await self.send(Requests.portal_end_sessions(user, sessions))

    async def portal_sessions_ended(self, after: int) -> SessionsEnded:
        return await self.send(Requests.portal_sessions_ended(after))

    async def portal_backup_codes(self, session: str) -> Enrollment:
        return await self.send(Requests.portal_backup_codes(session))

    async def portal_claim_token(self, session: str, serial: str, code: str) -> MethodView:
        return await self.send(Requests.portal_claim_token(session, serial, code))

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
    ) -> DeviceActivated:
        call = Requests.activate_device(code, alg, public_key, label=label, webpush=webpush)
        return await self.send(call)

    async def poll_device(self, payload: str, signature: str) -> DevicePoll:
        return await self.send(Requests.poll_device(payload, signature))

    async def answer_push(self, payload: str, signature: str) -> PushOutcome:
        return await self.send(Requests.answer_push(payload, signature))

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

    async def radius_stats(self) -> RadiusStats:
        return await self.send(Requests.radius_stats())
