"""The wire models of the administration console's node side: an operator's role
(``/v1/users/{name}/role``; the rules are ``node.roles``) and a temporary access code the
helpdesk gives (``/v1/users/{name}/access-code``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from .answers import ApiKeyView

MONTH_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"
"""A report's month, YYYY-MM (UTC), ASCII digits only."""
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""An API key's name."""
KEY_DAYS_MAX = 3650
TOKEN_FILE_MAX = 8 * 1024 * 1024
"""The largest token file imported through the SDK (bytes, before base64)."""


class RoleSet(msgspec.Struct, forbid_unknown_fields=True):
    """The operator role to give a person (``none``: take it away)."""

    role: Literal["admin", "helpdesk", "auditor", "none"]


class AccessCodeRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How long the code works: 1 minute to a week."""

    minutes: Annotated[int, Meta(ge=1, le=10080)] = 60


class AccessCodeIssued(msgspec.Struct, kw_only=True):
    """A temporary access code (shown once): it signs the person in once, until ``expires_at``,
    so they can enroll a new method."""

    user: str
    code: str
    expires_at: float


class Count(msgspec.Struct, kw_only=True):
    """One row of a report's table: what (a channel and a result, a method kind, a reason, a
    day) and how many."""

    key: str
    count: int
    result: str = ""


class PushTimes(msgspec.Struct, kw_only=True):
    """How long approved pushes took, from asking to the phone's answer (seconds)."""

    approved: int
    median: float | None
    p90: float | None
    buckets: list[Count]
    """How many were approved within each bucket ("0-5 s", ...)."""


class Dashboard(msgspec.Struct, kw_only=True):
    """The last 24 hours (whole hours, the current one included) at a glance."""

    since: float
    sign_ins: list[Count]
    """Second-factor decisions by channel (``key``) and ``result``."""
    failures: list[Count]
    """Refused second factors by reason."""
    locked_users: int
    fraud_reports: int
    fraud_reports_30d: int
    lockouts: int
    records: int
    """Audit records the counts were made from (all the node holds)."""


class MonthReport(msgspec.Struct, kw_only=True):
    """One month (UTC) of sign-ins, from the audit log."""

    month: str
    active_users: int
    """People with at least one accepted second factor in the month."""
    sign_ins: list[Count]
    methods: list[Count]
    """Accepted second factors by method kind (``removed``: the method is gone)."""
    failures: list[Count]
    days: list[Count]
    """Second-factor decisions per day (``key`` YYYY-MM-DD) and ``result``."""
    push: PushTimes
    fraud_reports: int
    lockouts: int
    months: list[str]
    """Every month the audit log holds, newest first."""


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A new API key: its name (letters, digits, ``.``, ``_``, ``-``), its scope, and how many
    days it lasts (none: until revoked)."""

    name: Annotated[str, Meta(pattern=KEY_NAME_PATTERN)]
    scope: Literal["admin", "portal", "adapter", "mobile", "console"]
    expires_days: Annotated[float, Meta(gt=0, le=KEY_DAYS_MAX)] | None = None


class ApiKeyCreated(msgspec.Struct, kw_only=True):
    """The key's token, shown once (the node keeps only its hash)."""

    name: str
    scope: str
    token: str
    expires_at: float | None


class TokenImport(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A token file (PSKC, RFC 6030; CSV; privacyIDEA's export), base64, and how to read it."""

    file: Annotated[str, Meta(max_length=(TOKEN_FILE_MAX + 2) // 3 * 4)]
    """The file's bytes, base64 (8 MiB at the most)."""
    file_name: Annotated[str, Meta(max_length=255)] = ""
    format: Literal["", "pskc", "csv", "privacyidea"] = ""
    """"": by content (and ``file_name``)."""
    password: Annotated[str, Meta(max_length=1024)] = ""
    """An encrypted file's password (PSKC with PBKDF2), pre-shared key in hexadecimal (PSKC),
    or privacyIDEA's printed key."""
    assign_by: Literal["serial", "user"] = "serial"


class TokenImported(msgspec.Struct, kw_only=True):
    records: int
    """Tokens in the file."""
    added: list[str]
    assigned: dict[str, str]
    """Serial -> user (``assign_by`` user)."""
    duplicates: list[str]
    unmatched: dict[str, str]


class FarmNodeView(msgspec.Struct, kw_only=True):
    name: str
    role: str
    release: str
    reads: str
    position: int | None
    lag: int | None
    last_contact: float | None
    health: str


class FarmComponentView(msgspec.Struct, kw_only=True):
    name: str
    kind: str
    host: str
    release: str
    health: str
    last_contact: float
    upgrading: bool


class FarmView(msgspec.Struct, kw_only=True):
    """The farm as the node asked sees it (``openmfa farm status``); a node on its own is a
    farm of one (``in_farm`` false)."""

    in_farm: bool
    node: str
    master: str
    format: int
    nodes: list[FarmNodeView]
    components: list[FarmComponentView]


class ApiKeyList(msgspec.Struct, kw_only=True):
    keys: list[ApiKeyView]
