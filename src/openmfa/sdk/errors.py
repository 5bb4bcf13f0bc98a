"""The errors a node sends, as the exceptions the SDK's clients raise: one class per stable
``code``, the same classes the node raises (``openmfa.errors``), all under ``OpenMfaError``.

    try:
        sdk.create_user("alice")
    except Conflict: ...            # exists already
    except NotMaster as e: ...      # e.master_url (the clients follow it themselves)
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AccessDenied,
    ActivationRefused,
    Conflict,
    DeviceClockOff,
    DeviceRefused,
    Diverged,
    Forbidden,
    InvalidClient,
    InvalidGrant,
    InvalidInput,
    MalformedRequest,
    MethodNotAllowed,
    NoSuchRoute,
    NotFound,
    NotMaster,
    NotReady,
    OAuthRefused,
    OpenMfaError,
    PayloadTooLarge,
    PushClosed,
    Reauthenticate,
    RequestError,
    SnapshotNeeded,
    StoreError,
    Unauthorized,
    UnauthorizedClient,
    Unavailable,
    UnlockRefused,
    UnlockRequired,
    by_code,
)

__all__ = [
    "AccessDenied",
    "ActivationRefused",
    "Conflict",
    "DeviceClockOff",
    "DeviceRefused",
    "Diverged",
    "Forbidden",
    "InvalidClient",
    "InvalidGrant",
    "InvalidInput",
    "MalformedRequest",
    "MethodNotAllowed",
    "NoSuchRoute",
    "NotFound",
    "NotMaster",
    "NotReady",
    "OAuthRefused",
    "OpenMfaError",
    "PayloadTooLarge",
    "PushClosed",
    "Reauthenticate",
    "RequestError",
    "SnapshotNeeded",
    "StoreError",
    "Unauthorized",
    "UnauthorizedClient",
    "Unavailable",
    "UnlockRefused",
    "UnlockRequired",
    "from_answer",
]


class _Unknown(OpenMfaError):
    """A code this client does not know (a newer node's): kept as sent."""


def from_answer(status: int, body: Any, text: str = "") -> OpenMfaError:
    """The exception for an error answer (``{"code", "message", "request_id"}``)."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return Unavailable(f"the node answered {status} without an SDK error body: {text[:200]}")
    code, message = body["code"], str(body.get("message", ""))
    request_id = str(body.get("request_id") or "")
    cls = by_code().get(code)
    if cls is NotMaster:
        return NotMaster(
            message, master_url=str(body.get("master_url") or ""), request_id=request_id
        )
    if cls is None:
        err: OpenMfaError = _Unknown(message, request_id=request_id)
        err.code, err.http_status = code, status
        return err
    try:
        return cls(message, request_id=request_id)
    except TypeError:  # a class with a constructor of its own
        return OpenMfaError(message, request_id=request_id)
