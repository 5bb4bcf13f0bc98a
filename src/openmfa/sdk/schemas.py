"""Request bodies of the SDK. Decoding checks types, lengths and unknown fields in one step
(msgspec); the same classes produce the OpenAPI schemas, so the document cannot disagree."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

Name = Annotated[str, Meta(min_length=1, max_length=255)]
Text = Annotated[str, Meta(max_length=255)]
Code = Annotated[str, Meta(max_length=64)]


class AuthenticateRequest(msgspec.Struct, forbid_unknown_fields=True):
    user: Name
    code: Code = ""
    """The code the user typed. May be empty when a one-time bypass is expected."""


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    display_name: Text = ""
    email: Text = ""
    phone: Annotated[str, Meta(max_length=64)] = ""


class UserPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    display_name: Text | UnsetType = UNSET
    email: Text | UnsetType = UNSET
    phone: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class MethodCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["totp", "hotp", "backup-codes"]
    secret: Annotated[str, Meta(max_length=256)] | None = None
    """Base32 seed of an existing token; omit to let the server generate one."""
    digits: Literal[6, 8] | None = None
    period: Literal[30, 60] | None = None
    algorithm: Literal["SHA1", "SHA256", "SHA512"] | None = None
    label: Text = ""


class ResyncRequest(msgspec.Struct, forbid_unknown_fields=True):
    first: Code
    second: Code


class BypassRequest(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[int, Meta(gt=0)]


class ErrorBody(msgspec.Struct):
    code: str
    message: str
    request_id: str = ""


REQUEST_BODIES: tuple[type[msgspec.Struct], ...] = (
    AuthenticateRequest,
    UserCreate,
    UserPatch,
    MethodCreate,
    ResyncRequest,
    BypassRequest,
)
