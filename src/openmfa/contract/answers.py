"""The answers of the SDK's routes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .requests import WebPushSubscription

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
    groups: list[str] = msgspec.field(default_factory=list)
    """Every group the user is in, from either origin, sorted (what rules and the OpenID
    Connect ``groups`` claim use; data format 11)."""
    manual_groups: list[str] = msgspec.field(default_factory=list)
    """The groups an administrator set (``openmfa user group add``)."""
    directory_groups: list[str] = msgspec.field(default_factory=list)
    """The groups the user's directory source says, nested groups resolved (each sync)."""
    pin_set: bool = False
    """The user has a PIN (for policy rules with ``pin=required``; data format 13). The PIN
    itself, and its hash, are never shown."""
    role: str = ""
    """The user's operator role in the administration console (``admin``, ``helpdesk``,
    ``auditor``; "" none; data format 15): what they may do there (``node.roles``)."""


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
    asserts_source: bool = False
    """The key may say where a sign-in comes from (``source``), which policy rules match."""


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
    channel: str = ""
    """A person's recent sign-ins only: how it came — ``portal``, ``radius`` (the RADIUS
    client is ``client`` after ``radius:``), ``application`` (an adapter's or an
    application's key, the name in ``client``), ``phone`` (the mobile app's answer),
    ``cli`` (the node's command line); "" unknown."""
    address: str = ""
    """Where it came from, as far as the channel knows (schema 0012): the browser's address
    (portal), the RADIUS request's Calling-Station-Id or else its NAS, an application's
    ``source``; "" unknown."""
    browser: str = ""
    """A browser's name from its user agent ("Firefox"; portal sign-ins; "" unknown)."""
    system: str = ""
    """The browser's operating system ("Android"; "" unknown)."""


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
    unlock: bool = False
    """An approval must carry the phone's screen lock (``SignedMessage.unlock``): the node's
    ``[mobile] require_unlock``."""


class ActivationCode(msgspec.Struct, kw_only=True):
    """Shown once: what a device activates with (single use, until ``expires_at``)."""

    user: str
    code: str
    url: str
    expires_at: float
    qr_text: str
    """``{url}/app/#activate={code}``: what the QR code carries, the OpenMFA Authenticator web
    app's address with the code in its fragment (never sent to a server)."""


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


class MethodName(msgspec.Struct, kw_only=True):
    """One of a person's methods as the sign-in's second step names it: its kind and the
    name its person gave it ("" or the node's own English label when none)."""

    kind: str
    label: str


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
    pin: bool = False
    """With a ticket: the sign-in's policy rule wants the person's PIN before a code or a push
    (``PortalSecondFactor.pin``; not with a passkey)."""
    codes: bool = True
    """With a ticket: a typed code may give the second factor here; False where the sign-in's
    policy rule allows none of the person's methods a code is typed from (only a passkey, or a
    push that must be numbered), for the portal to offer no code form."""
    methods: list[MethodName] | None = None
    """With a ticket: each of the user's methods, kind and name, oldest first, for the
    portal to say which one it is asking for ("Work phone"); None otherwise, and from a node
    older than this field."""
    remember_minutes: int = 0
    """With a ticket: the sign-in's policy rule lets the browser be remembered for this long
    (the portal offers the box; 0: no box). With ``remember_token``: how long it lasts (the
    cookie's max-age)."""
    remember_token: str = ""
    """After the second step with ``remember``: the browser's token for its cookie (given
    once; the node keeps only its hash)."""


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
    step_up: str = ""
    """Asked with ``X-OpenMFA-Sign-In-For`` (and the browser's address): the policy rule of
    that purpose this session's sign-in, made for something else, does not satisfy — the person
    signs in again for it (``node.portal_policy``); "": the session stands for it."""


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


class PersonalData(msgspec.Struct, kw_only=True):
    """Everything the node holds about one person (``GET /v1/users/{name}/export``): their
    account, their methods and devices (never a secret), and every audit record naming them
    (newest first, each with where it came from)."""

    exported_at: float
    user: UserView
    methods: list[MethodView]
    devices: list[DeviceView]
    audit: list[AuditView]


class Erased(msgspec.Struct, kw_only=True):
    """A person erased (``POST /v1/users/{name}/erase``): the name their audit records carry
    now."""

    pseudonym: str
