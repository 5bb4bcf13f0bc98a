"""The Web Service SDK's wire models: every request body, answer and error, in one place.

The server decodes requests and encodes answers with these classes (msgspec checks types,
lengths and unknown fields in one step), the OpenAPI document is generated from them, and the
Python clients decode with them — so the three cannot disagree. The text rules the server
enforces beyond what msgspec checks (printable text, no '/' in a user name) are stated here as
patterns, and the server's checks (``openmfa.node.accounts``) test exactly these patterns.

This module imports nothing of the node: the portal, the mobile service and the adapters use
it on hosts that hold no database.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

SDK_VERSION = 1
"""The version of this SDK contract. Changes only add (a route, an optional field); a removal
waits one release and raises this number. A node serves ``SDK_VERSIONS``."""
SDK_VERSIONS = (1,)
"""The SDK versions this node serves (``GET /version``)."""

_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
"""Control characters (Unicode category Cc)."""
_INVISIBLE = (
    "\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f"
    "\\ufeff\\ufff9-\\ufffb"
)
"""Invisible formatting characters (soft hyphen, zero-width and direction marks): two user names
that look the same must be the same name."""
TEXT_PATTERN = f"^[^{_CONTROL}]*$"
"""Printable text: no control characters."""
_NAME_CHAR = f"[^{_CONTROL}{_INVISIBLE}/]"
NAME_PATTERN = f"^{_NAME_CHAR}*[^\\s{_CONTROL}{_INVISIBLE}/]{_NAME_CHAR}*$"
"""A user name: printable, no invisible formatting, no '/', not blank (the node trims it and
normalises it to NFC)."""
SEED_PATTERN = "^\\s*(?:[A-Za-z2-7]\\s*){26,}(?:=\\s*)*$"
"""A Base32 seed as token vendors and apps print it: any case, spaces, optional padding, at
least 26 letters (128 bits, RFC 4226's minimum)."""
TEXT_RE = re.compile(TEXT_PATTERN)
SEED_RE = re.compile(SEED_PATTERN)
"""Use with ``fullmatch`` (``$`` alone also matches before a final newline)."""
NAME_RE = re.compile(NAME_PATTERN)

Name = Annotated[
    str, Meta(min_length=1, max_length=255, extra_json_schema={"pattern": NAME_PATTERN})
]
Text = Annotated[str, Meta(max_length=255, extra_json_schema={"pattern": TEXT_PATTERN})]
Phone = Annotated[str, Meta(max_length=64, extra_json_schema={"pattern": TEXT_PATTERN})]
Code = Annotated[str, Meta(max_length=64)]
Kind = Literal["totp", "hotp", "backup-codes"]


# -- requests ----------------------------------------------------------------------------------


class AuthenticateRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    user: Name
    code: Code = ""
    """The code the user typed. Empty: a one-time bypass, or a push to the user's device."""
    method: Literal["", "push"] = ""
    """``push``: ask the user's device to approve (the answer is ``pending``)."""
    source: Annotated[str, Meta(max_length=64, extra_json_schema={"pattern": TEXT_PATTERN})] = ""
    """Where the person signing in is (an address), shown on the phone with a push."""


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


class DeviceActivate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z2-7 ]+$")]
    alg: Literal["ES256", "EdDSA"]
    public_key: B64
    """The device's public key: DER SubjectPublicKeyInfo, base64url."""
    label: Text = ""
    webpush: WebPushSubscription | None = None


class SignedMessage(msgspec.Struct, forbid_unknown_fields=True):
    """A device's message (``core.push``): canonical JSON and its signature, base64url."""

    payload: B64
    signature: B64


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
    TokenAssign,
    TokenClaim,
)


# -- answers -------------------------------------------------------------------------------------


class UserView(msgspec.Struct, kw_only=True):
    name: str
    display_name: str
    email: str
    phone: str
    enabled: bool
    created_at: float
    updated_at: float
    locked_until: float | None = None
    failures: int = 0
    bypass_until: float | None = None
    default_method: str = ""
    """The method the user chose to be asked for first ("": none chosen; the oldest first)."""


class MethodView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    label: str
    digits: int
    period: int
    algorithm: str
    created_at: float
    backup_codes_left: int | None = None


class TokenView(msgspec.Struct, kw_only=True):
    """An imported OATH token (hardware or software) of the inventory; never its seed."""

    serial: str
    kind: str
    digits: int
    period: int
    algorithm: str
    issuer: str
    imported_at: float
    user: str = ""
    """The user it is assigned to ("": free, in the inventory)."""
    method_id: str = ""


class TokenPage(msgspec.Struct, kw_only=True):
    tokens: list[TokenView]
    next_after: str | None = None


class Enrollment(msgspec.Struct, kw_only=True):
    """Shown once, at enrollment: the secret and its URI, or the backup codes."""

    method: MethodView
    secret: str | None = None
    otpauth_uri: str | None = None
    backup_codes: list[str] | None = None


class ApiKeyView(msgspec.Struct, kw_only=True):
    name: str
    id: str
    scope: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class AuditView(msgspec.Struct, kw_only=True):
    id: int
    at: float
    node: str
    action: str
    user: str
    client: str
    method_id: str
    result: str
    reason: str
    request_id: str
    detail: str


class PendingPush(msgspec.Struct, kw_only=True):
    """A push request waiting for the user's phone: show ``number``; the user types it there."""

    id: str
    number: str
    expires_at: float


class PushOutcome(msgspec.Struct, kw_only=True):
    """Where a push request stands: ``pending``, ``accepted``, ``denied``, ``fraud`` or
    ``expired``."""

    id: str
    user: str
    status: str
    accepted: bool
    expires_at: float
    decided_at: float | None = None


class PushRequestView(msgspec.Struct, kw_only=True):
    """A push request as the phone sees it (never the number: the person types that)."""

    id: str
    user: str
    client: str
    source: str
    created_at: float
    expires_at: float
    nonce: str
    numbered: bool = True
    """The person must type the number shown where they sign in (false only for a RADIUS
    gateway that cannot show one: then approving is enough)."""


class ActivationCode(msgspec.Struct, kw_only=True):
    """Shown once: what a device activates with (single use, until ``expires_at``)."""

    user: str
    code: str
    url: str
    expires_at: float
    qr_text: str
    """``openmfa://activate?url=…&code=…``: what the QR code carries."""


class DeviceActivated(msgspec.Struct, kw_only=True):
    """Told to the device once: its id and the seed of its offline TOTP code."""

    device_id: str
    user: str
    label: str
    totp_secret: str
    digits: int
    period: int
    algorithm: str


class DeviceView(msgspec.Struct, kw_only=True):
    id: str
    label: str
    alg: str
    created_at: float
    webpush: bool


class DeviceList(msgspec.Struct, kw_only=True):
    devices: list[DeviceView]


class DevicePoll(msgspec.Struct, kw_only=True):
    """A signed poll's answer: the device it authenticated and its user's open requests."""

    device_id: str
    requests: list[PushRequestView]
    alg: str = ""
    public_key: str = ""
    """The device's key (for the mobile service, which checks the device's next polls itself
    for a while instead of asking the node each time)."""


class PushEvent(msgspec.Struct, kw_only=True):
    seq: int
    request: PushRequestView
    devices: list[str]
    """The devices to wake (their ids)."""
    webpush: dict[str, WebPushSubscription] = msgspec.field(default_factory=dict)
    """Where to send a WebPush wake-up, for the devices that registered one."""


class PushEvents(msgspec.Struct, kw_only=True):
    """New push requests since ``after`` (for the mobile service, which wakes the devices)."""

    boot: str
    """Changes when the node restarts: then start again from ``seq`` 0."""
    seq: int
    events: list[PushEvent]
    closed: list[str] = msgspec.field(default_factory=list)
    """Requests answered since ``after`` (a device need not be shown them again)."""


class AdapterResult(msgspec.Struct, kw_only=True):
    """The answer an identity provider's REST second factor reads: HTTP 200 either way, and
    ``result`` true only for a correct second factor (anything else from us — an error status —
    makes the identity provider fail closed)."""

    result: bool


class DecisionView(msgspec.Struct, kw_only=True):
    accepted: bool
    reason: str
    method_id: str | None = None
    locked_until: float | None = None
    request_id: str = ""
    pending: PendingPush | None = None
    """With reason ``pending``: the push request to wait for (``GET /v1/authenticate/{id}``)."""


class UserPage(msgspec.Struct, kw_only=True):
    users: list[UserView]
    next_after: str | None


class MethodList(msgspec.Struct, kw_only=True):
    methods: list[MethodView]


class PortalStep(msgspec.Struct, kw_only=True):
    """Where a portal sign-in stands: after the first factor a ``ticket`` (for the second),
    after the second a session ``token`` bound to the user (for every call about them)."""

    accepted: bool
    reason: str
    """``ok``, ``wrong_password``, or why the second factor was refused (as an authentication's)."""
    ticket: str = ""
    token: str = ""
    expires_at: float = 0.0
    pending: PendingPush | None = None
    """A push to the user's phone: show ``pending.number``; collect it with ``push_id``."""
    prefer: str = ""
    """With a ticket: the kind of the user's default method (``totp``, ``push``, ``passkey``
    …), for the portal to offer first; "" when none is chosen."""
    kinds: list[str] | None = None
    """With a ticket: the kinds of the user's methods (``totp``, ``push`` …, sorted), for the
    portal to offer only what the person can use (a push only with the mobile app); None
    otherwise, and from a node older than this field."""


class PasskeyChallenge(msgspec.Struct, kw_only=True):
    """What the page hands the browser (``options``: JSON for
    ``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON``),
    and the sealed ``challenge`` to send back with its answer."""

    options: str
    challenge: str
    expires_at: float


class PortalTotpOffer(msgspec.Struct, kw_only=True):
    """A new authenticator app's secret, shown once, and the sealed offer to confirm it with."""

    offer: str
    secret: str
    otpauth_uri: str
    expires_at: float


class PortalMe(msgspec.Struct, kw_only=True):
    """The signed-in user, and their methods."""

    user: UserView
    methods: list[MethodView]
    session_id: str = ""
    """This session's id (what a sign-out ends; a forward-auth cookie carries it)."""
    session_issued_at: float = 0.0
    """When the node issued this session (its clock)."""
    subject: str = ""
    """The name the sessions-ended view knows this person by (``SessionsEnded``)."""
    bypass_seconds: int | None = None
    """How long a one-time bypass the person may ask for lasts (``[portal] bypass_seconds``;
    0: none is given; None: a node that does not say)."""


class PortalSessionsEnd(msgspec.Struct, kw_only=True):
    """Sessions of ``user`` to end (their ids, as a forward-auth cookie carries them): what a
    portal host asks when a person signs out, whatever state its own session is in."""

    user: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    sessions: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
        msgspec.Meta(max_length=16),
    ]


class SessionEnd(msgspec.Struct, kw_only=True):
    """A session ended (``session``), or every session of ``subject`` issued before ``at``
    (``session`` empty)."""

    id: int
    subject: str
    session: str
    at: float


class SessionsEnded(msgspec.Struct, kw_only=True):
    """The portal hosts' revocation view: what ended since row ``after``, who is locked now."""

    ends: list[SessionEnd]
    locked: list[str]
    """Subjects locked right now: none of their sessions stands while they are."""
    last_id: int
    more: bool
    """More rows than one answer holds: ask again with ``after=last_id``."""
    keep_seconds: float
    """A session issued longer ago than this has ended, whatever the rows say."""
    now: float
    """The node's clock when it answered."""
    epoch: int = 0
    """The farm's epoch (0: a node on its own): when it changes, read everything again."""


class AuditPage(msgspec.Struct, kw_only=True):
    events: list[AuditView]
    next_after_id: int | None


class BypassGranted(msgspec.Struct, kw_only=True):
    user: str
    bypass_until: float


class Resynchronised(msgspec.Struct, kw_only=True):
    resynchronised: bool


class RadiusStats(msgspec.Struct, kw_only=True):
    enabled: bool
    counters: dict[str, int]


class Health(msgspec.Struct, kw_only=True):
    status: str
    """``ok`` (``/healthz``) or ``ready`` (``/readyz``)."""


class VersionInfo(msgspec.Struct, kw_only=True):
    release: str
    data_format: int
    writes_format: int
    reads_formats: list[int]
    node: str
    sdk_versions: list[int] = msgspec.field(default_factory=lambda: [1])
    """The SDK versions the node serves (nodes before SDK versions existed served 1)."""


COMPONENT_KINDS = ("portal", "mobile", "adapter")
OrderId = Annotated[str, msgspec.Meta(max_length=64)]


class ComponentOrder(msgspec.Struct, kw_only=True):
    """What ``farm upgrade``/``farm rollback`` asks of a component; every node holds it and
    hands it out with the answer to the component's next report."""

    id: OrderId
    action: Literal["upgrade", "rollback"]
    """``upgrade``: ``openmfa upgrade --from-bundle BUNDLE`` on its host; ``rollback``:
    ``openmfa rollback``."""
    target: Annotated[str, msgspec.Meta(max_length=64)]
    """The release the component runs when the order is done."""
    bundle: Annotated[str, msgspec.Meta(max_length=4096)] = ""


class ComponentReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a portal, mobile-service or adapter host says of itself every few seconds
    (``POST /v1/components/report``, with its own key: the key's scope is its kind)."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    kind: Literal["portal", "mobile", "adapter"]
    url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""
    release: Annotated[str, msgspec.Meta(max_length=64)]
    sdk_versions: Annotated[list[int], msgspec.Meta(max_length=16)]
    health: Annotated[str, msgspec.Meta(max_length=500)] = "ok"
    upgrading: bool = False
    rollback_to: Annotated[str, msgspec.Meta(max_length=64)] = ""
    boot: OrderId = ""
    busy: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Requests under way that a drained host lets finish first (a portal: sign-ins)."""
    """Changes each time the component's process starts."""
    started: Annotated[list[OrderId], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )
    """The ids of the orders this component has started (each is started once)."""


class ComponentReply(msgspec.Struct, kw_only=True):
    order: ComponentOrder | None = None
    """Something to do (an upgrade, a rollback), or nothing."""
    every: float = 10.0
    """Seconds until the next report."""


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    request_id: str = ""
    master_url: str | UnsetType = UNSET
    """With ``not_master``: the farm master's SDK URL, where writes go."""


REQUEST_BODIES = (*REQUEST_BODIES, ComponentReport, PortalSessionsEnd)
RESPONSES: tuple[type[msgspec.Struct], ...] = (
    ErrorBody,
    ComponentReply,
    AdapterResult,
    PortalStep,
    PortalMe,
    SessionsEnded,
    PortalTotpOffer,
    PasskeyChallenge,
    UserView,
    MethodView,
    Enrollment,
    ApiKeyView,
    AuditView,
    DecisionView,
    UserPage,
    MethodList,
    AuditPage,
    BypassGranted,
    Resynchronised,
    RadiusStats,
    Health,
    VersionInfo,
    PendingPush,
    PushOutcome,
    PushRequestView,
    ActivationCode,
    DeviceActivated,
    DeviceView,
    DeviceList,
    DevicePoll,
    PushEvent,
    PushEvents,
    TokenView,
    TokenPage,
)
