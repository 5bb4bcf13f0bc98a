"""What the node shows of its records: the CLI prints these and the SDK sends them as JSON."""

from __future__ import annotations

import msgspec


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


class MethodView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    label: str
    digits: int
    period: int
    algorithm: str
    created_at: float
    backup_codes_left: int | None = None


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


class DecisionView(msgspec.Struct, kw_only=True):
    accepted: bool
    reason: str
    method_id: str | None = None
    locked_until: float | None = None
    request_id: str = ""
