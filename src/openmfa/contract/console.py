"""The wire models of the administration console's node side: an operator's role
(``/v1/users/{name}/role``; the rules are ``node.roles``) and a temporary access code the
helpdesk gives (``/v1/users/{name}/access-code``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


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
