"""The wire models of a person changing their own password at the portal
(``/v1/portal/me/password``; the rules are ``node.password_change``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class PortalPasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in user's current password and the new one they chose (the node says
    whether the new one is long enough, new, and not a common one)."""

    current: Annotated[str, Meta(min_length=1, max_length=128)]
    new: Annotated[str, Meta(min_length=1, max_length=1024)]


class PasswordPolicy(msgspec.Struct, kw_only=True):
    """Where the signed-in user's password can be changed here, and what a new one needs."""

    where: Literal["local", "directory", ""]
    """``local``: the node's own password; ``directory``: the LDAP directory or Active Directory
    the first factor asks (``[portal] password_change``); "": not here (the first factor is a
    directory the node may not change, or an upstream RADIUS server)."""
    min_length: int
    common_list: bool
    """Whether a new password is checked against the shipped list of common passwords."""


class PasswordChanged(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What came of a password change: ``changed``, with a new session token for this session
    (every other session of the person ended); or why not."""

    changed: bool
    reason: Literal[
        "ok",
        "wrong_password",
        "locked",
        "too_short",
        "too_long",
        "same",
        "common",
        "refused",
        "unavailable",
        "not_here",
    ]
    """``too_short`` (below ``min_length``), ``too_long`` (over 128 characters), ``same`` (the
    current one), ``common`` (on the list of common passwords, or made of one), ``refused``
    (the directory's rules said no: ``detail``), ``unavailable`` (the directory could not be
    reached), ``not_here`` (``PasswordPolicy.where`` is "")."""
    detail: str = ""
    """The directory's own words, when it refused (``refused``)."""
    min_length: int = 0
    token: str = ""
    """This session's new token (``changed``): the one it had has ended with the others."""
    expires_at: float = 0.0
