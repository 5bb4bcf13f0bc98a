"""A typed Python client for the Web Service SDK.

The User Portal, the Mobile App Web Service and the identity-provider adapters talk to a node
only through this client (they hold an API key, never database credentials)::

    with SdkClient("https://mfa.example.org:8480", api_key) as sdk:
        decision = sdk.authenticate("alice", "123456")
        if decision.accepted: ...
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec

from ..node.views import AuditView, DecisionView, Enrollment, MethodView, UserView

__all__ = ["SdkClient", "SdkError"]

T = TypeVar("T")


class SdkError(Exception):
    """The node answered with an error: ``status``, its stable ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class _Users(msgspec.Struct):
    users: list[UserView]
    next_after: str | None


class _Methods(msgspec.Struct):
    methods: list[MethodView]


class _Events(msgspec.Struct):
    events: list[AuditView]
    next_after_id: int | None


class SdkClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            verify=verify,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def __enter__(self) -> SdkClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, kind: type[T] | None, **kw: Any) -> T:
        r = self._http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
                raise SdkError(
                    r.status_code, body["code"], body["message"], body.get("request_id", "")
                )
            except (ValueError, KeyError, TypeError):
                raise SdkError(r.status_code, "http_error", r.text[:200]) from None
        if kind is None:
            return None  # type: ignore[return-value]
        return msgspec.json.decode(r.content, type=kind)

    def authenticate(
        self, user: str, code: str = "", *, request_id: str | None = None
    ) -> DecisionView:
        headers = {"X-Request-ID": request_id} if request_id else {}
        return self._call(
            "POST",
            "/v1/authenticate",
            DecisionView,
            json={"user": user, "code": code},
            headers=headers,
        )

    def create_user(
        self, name: str, *, display_name: str = "", email: str = "", phone: str = ""
    ) -> UserView:
        return self._call(
            "POST",
            "/v1/users",
            UserView,
            json={"name": name, "display_name": display_name, "email": email, "phone": phone},
        )

    def get_user(self, name: str) -> UserView:
        return self._call("GET", f"/v1/users/{_seg(name)}", UserView)

    def list_users(self, *, limit: int = 100, after: str = "") -> list[UserView]:
        return self._call("GET", "/v1/users", _Users, params={"limit": limit, "after": after}).users

    def update_user(self, name: str, **fields: Any) -> UserView:
        return self._call("PATCH", f"/v1/users/{_seg(name)}", UserView, json=fields)

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/v1/users/{_seg(name)}", None)

    def enroll(self, name: str, kind: str, **options: Any) -> Enrollment:
        return self._call(
            "POST", f"/v1/users/{_seg(name)}/methods", Enrollment, json={"kind": kind, **options}
        )

    def list_methods(self, name: str) -> list[MethodView]:
        return self._call("GET", f"/v1/users/{_seg(name)}/methods", _Methods).methods

    def remove_method(self, name: str, method_id: str) -> None:
        self._call("DELETE", f"/v1/users/{_seg(name)}/methods/{_seg(method_id)}", None)

    def bypass(self, name: str, seconds: int) -> float:
        body = self._call("POST", f"/v1/users/{_seg(name)}/bypass", dict, json={"seconds": seconds})
        return float(body["bypass_until"])

    def audit(
        self,
        *,
        user: str | None = None,
        since: float | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[AuditView]:
        params: dict[str, Any] = {"limit": limit, "after_id": after_id}
        if user is not None:
            params["user"] = user
        if since is not None:
            params["since"] = since
        return self._call("GET", "/v1/audit", _Events, params=params).events


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
