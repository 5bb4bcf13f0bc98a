"""The administration console's SDK calls, as values (``Call``; no I/O), beside ``Requests``.

An operator signs in with the console's key (``console_*``: the first factor, then a numbered
push, a code where a policy rule allows it, or a passkey), and is given an operator token. Every
other console call is an ordinary route's ``Call`` (``Requests``, or the few here) sent with that
token in ``OPERATOR_HEADER`` (``as_operator``): the node decides it by the operator's role and
audits it as ``KEY/OPERATOR``. Both clients send these with ``send``.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import TypeVar

import msgspec

from .call import Call, _seg
from .headers import OPERATOR_HEADER, _origin
from .models import (
    AccessCodeIssued,
    AccessCodeRequest,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    FarmView,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PortalSecondFactor,
    PortalSignIn,
    PortalStep,
    RoleSet,
    TokenImport,
    TokenImported,
    UserPage,
    UserView,
)

__all__ = ["ConsoleRequests", "as_operator"]

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def as_operator(call: Call[T], token: str) -> Call[T]:
    """``call`` asked by the signed-in operator whose token is ``token`` (with a console key)."""
    return replace(call, headers={**call.headers, OPERATOR_HEADER: token})


class ConsoleRequests:
    """The console's own routes as ``Call`` values (the operator's sign-in; roles; access
    codes; a user search by the start of the name)."""

    @staticmethod
    def console_sign_in(
        user: str, password: str, *, address: str = "", agent: str = ""
    ) -> Call[PortalStep]:
        """The operator's first factor -> a ticket (``address``, ``agent``: the browser's)."""
        body = _encode(PortalSignIn(user=user, password=password))
        return Call(
            "POST", "/v1/console/sign-in", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def console_second_factor(
        ticket: str, code: str, *, address: str = "", agent: str = "", pin: str = ""
    ) -> Call[PortalStep]:
        """A typed code (only where a policy rule names code kinds) -> the operator token."""
        body = _encode(PortalSecondFactor(ticket=ticket, code=code, pin=pin))
        return Call(
            "POST", "/v1/console/second-factor", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def console_push(
        ticket: str, *, address: str = "", agent: str = "", pin: str = ""
    ) -> Call[PortalStep]:
        """A numbered push to the operator's phone (``pending.number`` to show)."""
        body = _encode(PortalSecondFactor(ticket=ticket, method="push", pin=pin))
        return Call(
            "POST", "/v1/console/second-factor", PortalStep, body=body, kind="write",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def console_push_collect(ticket: str, push_id: str, *, wait: int = 0) -> Call[PortalStep]:
        """The push's outcome (``wait`` seconds, 0 to 60) -> the operator token once approved."""
        body = _encode(PortalSecondFactor(ticket=ticket, push_id=push_id, wait=wait))
        return Call(
            "POST", "/v1/console/second-factor", PortalStep, body=body, kind="write",
            timeout=wait + 10.0,
        )  # fmt: skip

    @staticmethod
    def console_passkey_options(ticket: str, origin: str) -> Call[PasskeyChallenge]:
        body = _encode(PasskeyOptions(origin=origin, ticket=ticket))
        return Call("POST", "/v1/console/passkey/options", PasskeyChallenge, body=body)

    @staticmethod
    def console_passkey(
        ticket: str, challenge: str, credential: str, *, address: str = "", agent: str = ""
    ) -> Call[PortalStep]:
        body = _encode(PasskeyAnswer(challenge=challenge, credential=credential, ticket=ticket))
        return Call(
            "POST", "/v1/console/passkey", PortalStep, body=body, kind="authenticate",
            headers=_origin(address, agent),
        )  # fmt: skip

    @staticmethod
    def set_role(name: str, role: str) -> Call[UserView]:
        """``admin``, ``helpdesk``, ``auditor`` (``none``: taken away)."""
        body = _encode(RoleSet(role=role))  # type: ignore[arg-type]
        return Call("PUT", f"/v1/users/{_seg(name)}/role", UserView, body=body, kind="write")

    @staticmethod
    def remove_role(name: str) -> Call[UserView]:
        return Call("DELETE", f"/v1/users/{_seg(name)}/role", UserView, kind="write")

    @staticmethod
    def access_code(name: str, minutes: int = 60) -> Call[AccessCodeIssued]:
        """A temporary access code for ``name`` (shown once; replaces their earlier one)."""
        body = _encode(AccessCodeRequest(minutes=minutes))
        path = f"/v1/users/{_seg(name)}/access-code"
        return Call("POST", path, AccessCodeIssued, body=body, kind="write")

    @staticmethod
    def search_users(
        prefix: str, *, limit: int = 50, after: str = "", group: str = "", state: str = ""
    ) -> Call[UserPage]:
        """Users whose name starts with ``prefix``, a page at a time (``after``: the last
        name of the page before); ``group``: only its members; ``state``: ``locked``,
        ``disabled`` or ``active`` only."""
        params: dict[str, str | int | float] = {"limit": limit, "after": after, "prefix": prefix}
        params |= {k: v for k, v in (("group", group), ("state", state)) if v}
        return Call("GET", "/v1/users", UserPage, params=params)

    @staticmethod
    def api_keys() -> Call[ApiKeyList]:
        return Call("GET", "/v1/apikeys", ApiKeyList)

    @staticmethod
    def create_api_key(
        name: str, scope: str, *, expires_days: float | None = None
    ) -> Call[ApiKeyCreated]:
        body = _encode(ApiKeyCreate(name=name, scope=scope, expires_days=expires_days))  # type: ignore[arg-type]
        return Call("POST", "/v1/apikeys", ApiKeyCreated, body=body, kind="write")

    @staticmethod
    def revoke_api_key(name: str) -> Call[None]:
        return Call("DELETE", f"/v1/apikeys/{_seg(name)}", None, kind="write")

    @staticmethod
    def import_tokens(
        raw: bytes, *, file_name: str = "", password: str = "", assign_by: str = "serial"
    ) -> Call[TokenImported]:
        """A token file (PSKC, CSV, privacyIDEA's export) into the inventory: all or nothing."""
        body = _encode(
            TokenImport(
                file=base64.b64encode(raw).decode("ascii"),
                file_name=file_name,
                password=password,
                assign_by=assign_by,  # type: ignore[arg-type]
            )
        )
        return Call("POST", "/v1/tokens/import", TokenImported, body=body, kind="write")

    @staticmethod
    def farm_status() -> Call[FarmView]:
        return Call("GET", "/v1/farm/status", FarmView)
