"""Operator roles: who may do what in the administration console, decided by the node.

An operator is an OpenMFA user with a role (``admin``, ``helpdesk`` or ``auditor``; ``openmfa
user role NAME ROLE``). The console's host holds an API key of scope ``console``, which by
itself only signs operators in (``node.console_sign_in``); everything else it asks with an
operator's token (``OPERATOR_HEADER`` of the SDK), and the node decides it here.

Rules owned here (this module is the one place they are written):
- ``ROLES`` says what each role may do, in the SDK's permissions (what each route's
  ``Declared.permission`` names, as an API key's scope does): ``admin`` what an admin key may,
  and make and revoke API keys and import token files (``ADMIN_ONLY``: no key may);
  ``helpdesk`` find and view users, methods, devices and tokens, unlock, a one-time bypass, a
  temporary access code, revoke a device, resynchronise or assign a hardware token, read the
  audit; never create or change users, API keys, RADIUS clients or roles, nor delete anyone;
  ``auditor`` reads only;
- every call is decided again, with what the data set says now: the operator token must be one
  this console key was given and unexpired; the person must still exist, be enabled, not locked,
  not signed out everywhere since, and still have a role — so a role taken away (or a lock, a
  disable) refuses the very next call, not only the next sign-in;
- a permission the role lacks is refused 403 ``forbidden`` naming the operator and the role;
- an operator's actions are audited as ``KEY/OPERATOR`` (the audit row's ``client``): the
  console host's key name and the operator's name;
- a role is written only once the data set is at format 15 (``formats.ROLES_FORMAT``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from ..contract import UserView
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.role_records import role_groups_of
from .accounts import Accounts, Actor
from .apikeys import SCOPES, ApiClient
from .portal import OPERATOR, PortalTokens
from .session_ends import SessionEnds

_READ = frozenset({"users:read", "methods:read", "audit:read", "farm:read"})
ADMIN_ONLY = frozenset({"apikeys", "tokens:import"})
"""What an administrator may do in person (the console) and no API key may: make and revoke
API keys (a key that could make keys would outlive its own revocation), import token files."""
ROLES: dict[str, frozenset[str]] = {
    "admin": SCOPES["admin"] | ADMIN_ONLY,
    "helpdesk": _READ
    | {"users:unlock", "bypass", "access-code", "devices:revoke", "methods:resync"}
    | {"tokens:assign"},
    "auditor": _READ,
}
"""What each role may do, in the SDK's permissions (``sdk.routes``' ``Declared.permission``)."""


@dataclass(frozen=True, slots=True)
class OperatorClient(ApiClient):
    """A console key acting for a signed-in operator: ``name`` is ``KEY/OPERATOR`` (what the
    audit rows say), and what it may do is the operator's role's (``ROLES``)."""

    operator: str = ""
    role: str = ""

    def require(self, permission: str) -> None:
        if not self.may(permission):
            raise Forbidden(
                f"operator {self.operator!r} has role {self.role!r}, which may not "
                f"{permission}; ask an operator whose role allows it"
            )

    def may(self, permission: str) -> bool:
        return permission in ROLES.get(self.role, frozenset())

    def require_push(self) -> None:
        self.require("push")


class Roles:
    """Operators' roles: set and taken away by an administrator, and each call's check."""

    def __init__(self, store: Store, accounts: Accounts, tokens: PortalTokens) -> None:
        self.store = store
        self.accounts = accounts
        self.tokens = tokens
        self.writer = ChangeWriter(store)
        self.ends = SessionEnds(store)

    def guard(self, actor: ApiClient, name: str) -> None:
        """An operator who is not an admin acts on people, never on an operator (who could then
        sign in to the console with what was given) nor on themselves: Forbidden."""
        if not isinstance(actor, OperatorClient) or actor.role == "admin":
            return
        target = self.accounts.get_user(name)  # NotFound first
        if target.name == actor.operator or target.role:
            who = "themselves" if target.name == actor.operator else "an operator"
            raise Forbidden(
                f"operator {actor.operator!r} has role {actor.role!r}, which may not act on "
                f"{target.name!r} ({who}); ask an admin"
            )

    def _password_set_since(self, name: str, at: float) -> bool:
        pw, u = t.passwords.c, t.users.c
        with self.store.read() as conn:
            when = conn.scalar(
                select(pw.updated_at).select_from(t.passwords.join(t.users)).where(u.name == name)
            )
        return when is not None and float(when) >= at

    def set(self, name: str, role: str, actor: Actor | None = None) -> UserView:
        """Give ``name`` the operator role ``role`` (``none``: take it away)."""
        if role != "none" and role not in ROLES:
            raise InvalidInput(f"a role is one of {', '.join(ROLES)} or none, not {role!r}")
        actor = actor or Actor()
        user_id = self.accounts.user_id(name)  # NotFound first
        with self.store.read() as conn:
            formats.require(conn, formats.ROLES_FORMAT, "Operator roles")
        if role == "none":
            mapping = self.accounts.config.get("directory", "role_groups")
            user = self.accounts.get_user(name)
            given = role_groups_of(mapping, {"directory": user.directory_groups})
            if given:
                raise Conflict(
                    f"{name!r} has a role from the directory group {', '.join(given)} "
                    "([directory] role_groups): take them out of it in the directory (or out of "
                    f"role_groups); to stop them at once, `openmfa user disable {name}`"
                )
        payload = {"id": user_id, "role": None if role == "none" else role, "at": time.time()}
        self.writer.commit(
            [Change("user.role", payload)],
            [
                AuditEvent(
                    "user.role",
                    "ok",
                    user_name=name,
                    client=actor.client,
                    request_id=actor.request_id,
                    detail=role,
                )
            ],
        )
        return self.accounts.get_user(name)

    def operator(self, key: ApiClient, token: str, now: float) -> OperatorClient:
        """The operator ``token`` stands for, as the data set says now, for ``key`` (a console
        key); Unauthorized when the token or the person is no good, Forbidden without a role."""
        if key.scope != "console" or isinstance(key, OperatorClient):
            raise Forbidden(
                f"API key {key.name!r} has scope {key.scope!r}; an operator's token is sent "
                "with a key of scope console"
            )
        grant = self.tokens.check(token, OPERATOR, key.name, now, via=None)
        refused = Unauthorized("the operator's session has ended; sign in again")
        try:
            user = self.accounts.get_user(grant.user)
        except NotFound:
            raise refused from None
        locked = user.locked_until is not None and user.locked_until > now
        if not user.enabled or locked or self.accounts.sessions_after(user.name) > grant.issued_at:
            raise refused
        # A lock (even one over now), an unlock, a disable: every session of the person ended;
        # so did a password an administrator set since.
        if self.ends.ended(user.name, "", grant.issued_at, now) or self._password_set_since(
            user.name, grant.issued_at
        ):
            raise refused
        if not user.role:
            raise Forbidden(f"{user.name!r} is no longer an operator (no role)")
        name = f"{key.name}/{user.name}"
        return OperatorClient(name, key.scope, operator=user.name, role=user.role)
