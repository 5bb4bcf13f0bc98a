"""The request bodies of the SDK's routes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .text import SEED_PATTERN, TEXT_PATTERN, Code, Kind, Name, Phone, Text

# -- requests ----------------------------------------------------------------------------------


class AuthenticateRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    user: Name
    code: Code = ""
    """The code the user typed. Empty: a one-time bypass, or a push to the user's device."""
    method: Literal["", "push"] = ""
    """``push``: ask the user's device to approve (the answer is ``pending``)."""
    source: Annotated[str, Meta(max_length=64, extra_json_schema={"pattern": TEXT_PATTERN})] = ""
    """Where the person signing in is (an address), shown on the phone with a push. Policy
    rules' source networks match it only from an API key created with ``--may-assert-source``;
    from any other key it is shown, never believed."""


class AdapterVerify(msgspec.Struct):
    """An identity provider's second-factor check (LemonLDAP::NG's REST second factor posts
    ``{"user", "code"}`` and may add arguments of its own, which are ignored)."""

    user: Annotated[str, Meta(max_length=255)]
    code: Code = ""


class PortalSignIn(msgspec.Struct, forbid_unknown_fields=True):
    """The User Portal's first step: the user's first factor (``[portal] primary``)."""

    user: Name
    password: Annotated[str, Meta(min_length=1, max_length=128)]


class PortalSecondFactor(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The second step: the ticket of the first and a code of one of the user's methods; or
    ``method: push`` (the answer is ``pending``, with the number to show), then the same
    ticket with ``push_id`` (and ``wait`` seconds) until the phone has approved."""

    ticket: Annotated[str, Meta(min_length=1, max_length=1024)]
    code: Code = ""
    method: Literal["", "push"] = ""
    push_id: Annotated[str, Meta(max_length=40)] = ""
    wait: Annotated[int, Meta(ge=0, le=30)] = 0
    remember: bool = False
    """Remember this browser once signed in (only where the first step offered it:
    ``PortalStep.remember_minutes``); the answer carries the cookie's token."""
    pin: Annotated[str, Meta(max_length=12, pattern="^[0-9]*$")] = ""
    """The person's PIN, where the first step said the sign-in's rule wants it
    (``PortalStep.pin``): checked before the code, or before the push is sent."""


class PortalTotpStart(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A signed-in user adds an authenticator app: what it will be called."""

    label: Text = ""


class PortalTotpConfirm(msgspec.Struct, forbid_unknown_fields=True):
    """The offer, and the code the app shows for it: only then is the method saved."""

    offer: Annotated[str, Meta(min_length=1, max_length=1024)]
    code: Code


Origin = Annotated[str, Meta(max_length=256, pattern="^https?://[A-Za-z0-9.:\\[\\]-]+$")]
"""A web page's origin: scheme, host and port (``https://portal.example.org``)."""
Sealed = Annotated[str, Meta(min_length=1, max_length=2048)]


class PortalPhone(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in user's phone number for SMS and voice ("" removes it); stored as E.164."""

    phone: Annotated[str, Meta(max_length=32)]


class PasskeyOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A passkey ceremony begins in the page at ``origin``: with the sign-in's ``ticket`` to
    sign in, or (with the session token) to register a new passkey."""

    origin: Origin
    ticket: Annotated[str, Meta(max_length=1024)] = ""


class PasskeyAnswer(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The browser's answer (``PublicKeyCredential.toJSON()``, as JSON text) to the sealed
    ``challenge``; ``ticket`` to sign in, ``label`` to name a new passkey."""

    challenge: Sealed
    credential: Annotated[str, Meta(min_length=2, max_length=16384)]
    ticket: Annotated[str, Meta(max_length=1024)] = ""
    label: Text = ""
    remember: bool = False
    """Signing in: remember this browser (as ``PortalSecondFactor.remember``)."""


class ActivationRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    label: Text = ""
    """What the device will be called (\"Alice's phone\"); the device may name itself."""


B64 = Annotated[str, Meta(min_length=1, max_length=4096, pattern="^[A-Za-z0-9_-]+$")]
"""base64url without padding."""


class WebPushSubscription(msgspec.Struct, forbid_unknown_fields=True):
    """Where a WebPush/UnifiedPush wake-up goes (RFC 8030/8291): the push service's endpoint
    and the device's receiving keys."""

    endpoint: Annotated[str, Meta(max_length=2048, pattern="^https?://[^\\s]+$")]
    p256dh: B64
    auth: B64


Unlock = Annotated[str, Meta(max_length=6144)]
"""A WebAuthn credential as JSON text (``PublicKeyCredential.toJSON()``), "" for none; short
enough that a device's whole body fits the mobile service's 8192 bytes (a platform credential
with attestation "none" takes about 2000)."""


class DeviceActivate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z2-7 ]+$")]
    alg: Literal["ES256", "EdDSA"]
    public_key: B64
    """The device's public key: DER SubjectPublicKeyInfo, base64url."""
    label: Text = ""
    webpush: WebPushSubscription | None = None
    unlock: Unlock = ""
    """Where approvals need the phone's screen lock (``[mobile] require_unlock``): the
    registration of a platform credential with user verification, whose challenge is
    SHA-256(``openmfa-unlock:`` + the code, upper case, without spaces); rp id: the host of the
    mobile service's public URL. Without it such a node answers ``unlock_required`` and the
    code stays usable."""


class SignedMessage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A device's message (``core.push``): canonical JSON and its signature, base64url."""

    payload: B64
    signature: B64
    unlock: Unlock = ""
    """An approval where the node requires the screen lock (``PushRequestView.unlock``): the
    assertion of the credential registered at activation, with user verification, over the
    request's nonce (base64url-decoded). Ignored in a poll, a denial or a fraud report."""


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    display_name: Text = ""
    email: Text = ""
    phone: Phone = ""


class UserPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    display_name: Text | UnsetType = UNSET
    email: Text | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    default_method: Annotated[str, Meta(max_length=32)] | UnsetType = UNSET
    """The method the user is asked for first ("" clears the choice); data format 4."""


class PortalDefault(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in user's choice of the method they are asked for first ("" clears it)."""

    method_id: Annotated[str, Meta(max_length=32)]


class PortalMethodName(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in user's name for one of their methods ("Work phone"; data format 9)."""

    label: Annotated[str, Meta(max_length=256)]
    """1 to 64 printable characters once trimmed (the node says what was wrong)."""


class MethodCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    kind: Kind
    secret: (
        Annotated[str, Meta(max_length=256, extra_json_schema={"pattern": SEED_PATTERN})] | None
    ) = None
    """Base32 seed of an existing token; omit to let the server generate one (always, for
    backup codes)."""
    digits: Literal[6, 8] | None = None
    period: Literal[30, 60] | None = None
    algorithm: Literal["SHA1", "SHA256", "SHA512"] | None = None
    label: Text = ""


class ResyncRequest(msgspec.Struct, forbid_unknown_fields=True):
    first: Code
    second: Code


class BypassRequest(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[int, Meta(ge=1)]
    """At most ``[policy] bypass_max_seconds`` (the node's OpenAPI document says how many)."""


PIN_PATTERN = "^[0-9]{4,12}$"
"""A PIN's form (``node.pins.PIN_RE``)."""


class PinSet(msgspec.Struct, forbid_unknown_fields=True):
    pin: Annotated[str, Meta(pattern=PIN_PATTERN)]
    """4 to 12 digits, typed before the code where a policy rule says ``pin=required``."""


class TokenAssign(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user: str


class TokenClaim(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    serial: str
    code: str


REQUEST_BODIES: tuple[type[msgspec.Struct], ...] = (
    AuthenticateRequest,
    AdapterVerify,
    UserCreate,
    UserPatch,
    MethodCreate,
    ResyncRequest,
    BypassRequest,
    ActivationRequest,
    DeviceActivate,
    SignedMessage,
    PortalSignIn,
    PortalSecondFactor,
    PortalTotpStart,
    PortalTotpConfirm,
    PasskeyOptions,
    PasskeyAnswer,
    PortalPhone,
    PortalDefault,
    PortalMethodName,
    TokenAssign,
    TokenClaim,
)
