"""Administration of users and their methods: the operations behind ``openmfa user|method``
and the SDK's ``/v1/users`` routes. Configuration writes go through ``ChangeWriter``; state
writes (bypass, unlock, HOTP resync) are made here directly and audited.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from ..config import Config
from ..contract import NAME_RE, TEXT_RE, Enrollment, MethodView, UserView
from ..core import backup_codes, hotp
from ..core.verification import MethodKind
from ..errors import Conflict, InvalidInput, NotFound, NotMaster
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.crypto import SecretBox
from ..store.database import Store
from ..store.group_records import groups_of
from ..store.pin_records import with_pins
from ..store.remember_records import FORGOTTEN_METHOD, forget_every
from ..store.role_records import role_from_groups, roles_of
from .audit import NOWHERE, Origin
from .auth_state import forward
from .method_views import methods_in
from .session_ends import end_change, ends_known

_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz234567")
MIN_SECRET_BYTES = 16  # RFC 4226 R6: the shared secret MUST be at least 128 bits
SECRET_BYTES = {"SHA1": 20, "SHA256": 32, "SHA512": 64}
USER_FIELDS = ("display_name", "email", "phone", "enabled")


@dataclass(frozen=True)
class Actor:
    """Who asked: an API client's name, or ``cli`` for the local command line; ``origin``:
    where the person was, as the portal says (kept, sealed, with the audit row)."""

    client: str = "cli"
    request_id: str = ""
    origin: Origin = NOWHERE


def check_name(name: str) -> str:
    """The SDK's rule for user names (``contract.NAME_PATTERN``, 1 to 255 characters),
    trimmed and NFC-normalised."""
    name = unicodedata.normalize("NFC", name)
    if "/" in name:
        raise InvalidInput("a user name must not contain '/' (it could not be used in SDK URLs)")
    if NAME_RE.fullmatch(name) is None and name.strip():
        raise InvalidInput(
            "a user name must not contain control characters or invisible formatting characters"
        )
    name = name.strip()
    if not name or len(name) > 255:
        raise InvalidInput("a user name must be 1 to 255 characters long")
    return name


def _check_text(field: str, value: str, limit: int = 255) -> str:
    """The SDK's rule for text fields (``contract.TEXT_PATTERN``), trimmed."""
    if len(value) > limit or TEXT_RE.fullmatch(value) is None:
        raise InvalidInput(f"{field} must be at most {limit} printable characters")
    return value.strip()


def decode_secret(text: str) -> bytes:
    """Base32 as authenticator apps and token vendors print it (any case, spaces, no padding;
    a last letter that holds only leftover bits is ignored, as authenticator apps do)."""
    cleaned = "".join(text.split()).rstrip("=")
    if not all(c in _BASE32 for c in cleaned):  # (ASCII only: "ß".upper() is "SS")
        raise InvalidInput("the secret must be Base32 (letters A-Z and digits 2-7)")
    cleaned = cleaned.upper()
    if len(cleaned) % 8 in (1, 3, 6):
        cleaned = cleaned[:-1]
    try:
        key = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput("the secret must be Base32 (letters A-Z and digits 2-7)") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidInput(
            f"the secret is {len(key) * 8} bits; RFC 4226 requires at least 128 bits "
            "(26 Base32 characters)"
        )
    return key


def key_uri(
    kind: str, key: bytes, *, issuer: str, account: str, digits: int, period: int, algorithm: str
) -> str:
    """The ``otpauth://`` Key URI that authenticator apps read from a QR code."""
    params: dict[str, Any] = {
        "secret": base64.b32encode(key).decode().rstrip("="),
        "issuer": issuer,
        "algorithm": algorithm,
        "digits": digits,
    }
    if kind == MethodKind.TOTP:
        params["period"] = period
    else:
        params["counter"] = 0
    label = quote(f"{issuer}:{account}", safe=":@")
    return f"otpauth://{kind}/{label}?{urlencode(params, quote_via=quote)}"


class Accounts:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.writer = ChangeWriter(store)

    # -- users ----------------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        display_name: str = "",
        email: str = "",
        phone: str = "",
        actor: Actor = Actor(),
    ) -> UserView:
        name = check_name(name)
        with self.store.read() as conn:
            if conn.scalar(select(t.users.c.id).where(t.users.c.name == name)) is not None:
                raise Conflict(f"user {name!r} exists already")
        payload = {
            "name": name,
            "display_name": _check_text("display_name", display_name),
            "email": _check_text("email", email),
            "phone": _check_text("phone", phone, 64),
            "enabled": True,
            "at": time.time(),
        }
        self.writer.commit([Change("user.add", payload)], [self._event("user.add", name, actor)])
        return self.get_user(name)

    def get_user(self, name: str) -> UserView:
        with self.store.read() as conn:
            return self.user_in(conn, name)[0]

    def user_in(self, conn: Connection, name: str) -> tuple[UserView, int]:
        """The user ``name`` and their id, read in ``conn``'s transaction."""
        row = conn.execute(_USER_BY_NAME, {"name": name}).first()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        groups = groups_of(conn, [int(row.id)]).get(int(row.id), {})
        pin = bool(with_pins(conn, [int(row.id)]))
        role = roles_of(conn, [int(row.id)]).get(int(row.id), "") or self.group_role(groups)
        return _user_view(row, self.store.box, groups, pin, role), int(row.id)

    def list_users(
        self, *, limit: int = 100, after: str = "", prefix: str = "", where: Sequence[Any] = ()
    ) -> list[UserView]:
        """Users by name after ``after``; ``prefix``: only names that start with it (a range
        of the name's index: the console's search over many users); ``where``: more conditions
        (``user_search.filters``)."""
        query = _user_query().where(t.users.c.name > after, *where)
        if prefix:
            name = t.users.c.name
            query = query.where(
                name >= prefix,
                name.startswith(prefix, autoescape=True),  # LIKE: SQLite's ignores case, so
                func.substr(name, 1, len(prefix)) == prefix,  # the exact start too
            )
        query = query.order_by(t.users.c.name).limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(query).all()
            groups = groups_of(conn, [int(r.id) for r in rows])
            pins = with_pins(conn, [int(r.id) for r in rows])
            roles = roles_of(conn, [int(r.id) for r in rows])
        box = self.store.box
        return [
            _user_view(
                r,
                box,
                groups.get(r.id, {}),
                r.id in pins,
                roles.get(r.id, "") or self.group_role(groups.get(r.id, {})),
            )
            for r in rows
        ]

    def group_role(self, groups: dict[str, list[str]]) -> str:
        """The role ``[directory] role_groups`` gives a person in ``groups`` (by origin)."""
        return role_from_groups(self.config.get("directory", "role_groups"), groups)

    def update_user(self, name: str, fields: dict[str, Any], actor: Actor = Actor()) -> UserView:
        unknown = set(fields) - set(USER_FIELDS)
        if unknown:
            raise InvalidInput(
                f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(USER_FIELDS)}"
            )
        clean: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    raise InvalidInput("enabled must be true or false")
                clean[key] = value
            else:
                if not isinstance(value, str):
                    raise InvalidInput(f"{key} must be a string")
                clean[key] = _check_text(key, value, 64 if key == "phone" else 255)
        user_id = self.user_id(name)
        detail = ",".join(sorted(clean))
        changes = [Change("user.update", {"id": user_id, "fields": clean, "at": time.time()})]
        if clean.get("enabled") is False and ends_known(self.store):
            changes.append(end_change(name))  # a disabled person's sessions end everywhere
        self.writer.commit(changes, [self._event("user.update", name, actor, detail=detail)])
        return self.get_user(name)

    # -- preferences (data format 4) -------------------------------------------------------

    def set_default_method(self, name: str, method_id: str, actor: Actor = Actor()) -> UserView:
        """The method ``name`` is asked for first (a code app, a phone, a passkey); "" clears
        the choice. Backup and access codes are for emergencies, never the default."""
        user_id = self.user_id(name)
        if method_id:
            kind = next((m.kind for m in self.list_methods(name) if m.id == method_id), None)
            if kind is None:
                raise NotFound(f"user {name!r} has no method {method_id!r}")
            if kind in (MethodKind.BACKUP_CODES, MethodKind.ACCESS_CODE):
                raise InvalidInput("backup and access codes are for emergencies, not the default")
        self._require_preferences()
        self.writer.commit(
            [
                Change(
                    "user.update",
                    {"id": user_id, "fields": {"default_method": method_id}, "at": time.time()},
                )
            ],
            [self._event("user.default_method", name, actor, method_id=method_id)],
        )
        return self.get_user(name)

    def end_sessions(self, name: str, actor: Actor = Actor()) -> float:
        """Sign ``name`` out everywhere: every portal session token issued before now stops
        working, on every node of the farm. Returns the moment."""
        user_id = self.user_id(name)
        self._require_preferences()
        now = time.time()
        changes = [
            Change("user.update", {"id": user_id, "fields": {"sessions_after": now}, "at": now})
        ]
        if ends_known(self.store):  # forward-auth cookies too, on every portal host
            changes.append(end_change(name, "", now))
        self.writer.commit(changes, [self._event("user.sign_out_everywhere", name, actor)])
        return now

    def default_kind(self, name: str) -> str:
        """The kind of the method ``name`` chose to be asked for first ("": none chosen)."""
        chosen = self.get_user(name).default_method
        if not chosen:
            return ""
        return next((str(m.kind) for m in self.list_methods(name) if m.id == chosen), "")

    def sessions_after(self, name: str) -> float:
        """Portal session tokens of ``name`` issued before this moment are void (0: none)."""
        with self.store.read() as conn:
            value = conn.scalar(_SESSIONS_AFTER, {"name": name})
        return float(value or 0.0)

    def _require_preferences(self) -> None:
        with self.store.read() as conn:
            what = "preferences (default method, sign out everywhere)"
            formats.require(conn, formats.PREFERENCES_FORMAT, what)

    def delete_user(self, name: str, actor: Actor = Actor()) -> None:
        user_id = self.user_id(name)
        changes = [Change("user.delete", {"id": user_id})]
        if ends_known(self.store):  # a cookie naming them is refused, should the name come back
            changes.append(end_change(name))
        self.writer.commit(changes, [self._event("user.delete", name, actor)])

    def unlock(self, name: str, actor: Actor = Actor()) -> UserView:
        user_id = self.user_id(name)
        with self.store.write() as conn:
            conn.execute(
                update(t.user_state)
                .where(t.user_state.c.user_id == user_id)
                .values(failures=0, locked_until=None)
            )
            self._audit(conn, self._event("user.unlock", name, actor))
        if ends_known(self.store):
            # The lock ended the sessions before it; unlocking does not bring them back.
            with contextlib.suppress(NotMaster):
                self.writer.commit([end_change(name)])
        return self.get_user(name)

    def grant_bypass(self, name: str, seconds: int, actor: Actor = Actor()) -> float:
        limit = int(self.config.get("policy", "bypass_max_seconds"))
        if not 0 < seconds <= limit:
            raise InvalidInput(f"a bypass lasts 1 to {limit} seconds ([policy] bypass_max_seconds)")
        user_id = self.user_id(name)
        until = time.time() + seconds
        with self.store.write() as conn:
            conn.execute(
                update(t.user_state)
                .where(t.user_state.c.user_id == user_id)
                .values(bypass_until=until)
            )
            self._audit(conn, self._event("bypass.grant", name, actor, detail=f"seconds={seconds}"))
        return until

    # -- methods --------------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        kind: str,
        *,
        secret: str | None = None,
        digits: int | None = None,
        period: int | None = None,
        algorithm: str | None = None,
        label: str = "",
        actor: Actor = Actor(),
    ) -> Enrollment:
        enroll = self.config.values["enroll"]
        try:
            method_kind = MethodKind(kind)
        except ValueError:
            raise InvalidInput(
                f"method kind must be one of {', '.join(MethodKind)}, not {kind!r}"
            ) from None
        if method_kind == MethodKind.PUSH:
            raise InvalidInput(
                "a push device enrolls itself: give the user an activation code "
                "(openmfa device activate NAME) and activate the app with it"
            )
        if method_kind == MethodKind.PASSKEY:
            raise InvalidInput("a passkey is registered by its user, in the User Portal")
        if method_kind == MethodKind.ACCESS_CODE:
            raise InvalidInput("give a temporary access code with `openmfa user access-code`")
        digits = enroll["digits"] if digits is None else digits
        period = enroll["period"] if period is None else period
        algorithm = (enroll["algorithm"] if algorithm is None else algorithm).upper()
        if digits not in (6, 8):
            raise InvalidInput("digits must be 6 or 8")
        if period not in (30, 60):
            raise InvalidInput("period must be 30 or 60 seconds")
        if algorithm not in SECRET_BYTES:
            raise InvalidInput("algorithm must be SHA1, SHA256 or SHA512")
        label = _check_text("label", label)
        user_id = self.user_id(name)
        method_id = "m" + secrets.token_hex(6)
        payload: dict[str, Any] = {
            "id": method_id,
            "user_id": user_id,
            "kind": str(method_kind),
            "label": label,
            "digits": digits,
            "period": period,
            "algorithm": algorithm,
            "at": time.time(),
        }
        out = Enrollment(
            method=MethodView(
                id=method_id,
                kind=str(method_kind),
                label=label,
                digits=digits,
                period=period,
                algorithm=algorithm,
                created_at=payload["at"],
            )
        )
        if method_kind == MethodKind.BACKUP_CODES:
            if secret is not None:
                raise InvalidInput("backup codes are generated by the server; do not pass a secret")
            codes = backup_codes.generate(int(self.config.get("policy", "backup_code_count")))
            payload["backup_hashes"] = [
                backup_codes.hash_code(self.store.box.pepper, c).hex() for c in codes
            ]
            out.backup_codes = codes
            out.method.backup_codes_left = len(codes)
            out.method.digits = backup_codes.CODE_DIGITS
            payload["digits"] = backup_codes.CODE_DIGITS
        else:
            key = (
                decode_secret(secret)
                if secret is not None
                else secrets.token_bytes(SECRET_BYTES[algorithm])
            )
            payload["secret_enc"] = self.store.box.seal(key, method_id).hex()
            out.secret = base64.b32encode(key).decode().rstrip("=")
            out.otpauth_uri = key_uri(
                str(method_kind),
                key,
                issuer=enroll["issuer"],
                account=name,
                digits=digits,
                period=period,
                algorithm=algorithm,
            )
        self.writer.commit(
            [Change("method.add", payload)],
            [self._event("method.add", name, actor, method_id=method_id, detail=str(method_kind))],
        )
        return out

    def issue_access_code(
        self, name: str, minutes: float, actor: Actor = Actor()
    ) -> tuple[str, float]:
        """A temporary access code for a person who lost their phone (the helpdesk gives it):
        it signs them in once, until ``minutes`` from now, so they can enroll a new method. It
        replaces their earlier one; shown once, stored hashed (like a backup code)."""
        if not 1 <= minutes <= 7 * 24 * 60:
            raise InvalidInput("minutes must be between 1 and 10080 (a week)")
        user_id = self.user_id(name)
        for m in self.list_methods(name):
            if m.kind == MethodKind.ACCESS_CODE:
                self.remove_method(name, m.id, actor)
        (code,) = backup_codes.generate(1)
        now = time.time()
        until = now + minutes * 60
        method_id = "a" + secrets.token_hex(6)
        sealed = self.store.box.seal(json.dumps({"until": until}).encode(), method_id)
        payload: dict[str, Any] = {
            "id": method_id,
            "user_id": user_id,
            "kind": str(MethodKind.ACCESS_CODE),
            "label": "temporary access code",
            "digits": backup_codes.CODE_DIGITS,
            "period": 30,
            "algorithm": "SHA1",
            "at": now,
            "secret_enc": sealed.hex(),
            "backup_hashes": [backup_codes.hash_code(self.store.box.pepper, code).hex()],
        }
        detail = f"access-code ({minutes:g} min, single use)"
        self.writer.commit(
            [Change("method.add", payload)],
            [self._event("method.add", name, actor, method_id=method_id, detail=detail)],
        )
        return code, until

    def list_methods(self, name: str) -> list[MethodView]:
        with self.store.read() as conn:
            user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == name))
            if user_id is None:
                raise NotFound(f"no user named {name!r}")
            return methods_in(conn, int(user_id))

    def remove_method(self, name: str, method_id: str, actor: Actor = Actor()) -> None:
        """Remove a method (a revoked device's too); every remembered browser of the person is
        forgotten with it (``node.remembered``)."""
        self._method_row(name, method_id)
        with self.store.read() as conn:
            forget, some = forget_every(conn, name)
        events = [self._event("method.remove", name, actor, method_id=method_id)]
        if some:
            events.append(
                self._event("portal.remember", name, actor, detail=FORGOTTEN_METHOD, result="ended")
            )
        self.writer.commit([Change("method.remove", {"id": method_id}), *forget], events)

    def resync_hotp(
        self, name: str, method_id: str, first: str, second: str, actor: Actor = Actor()
    ) -> bool:
        row = self._method_row(name, method_id)
        if row.kind != MethodKind.HOTP:
            raise Conflict(f"method {method_id} is {row.kind}; only hotp methods resynchronise")
        key = self.store.box.open(row.secret_enc, method_id)
        window = int(self.config.get("policy", "hotp_resync_window"))
        with self.store.write() as conn:
            counter = (
                conn.scalar(
                    select(t.method_state.c.counter).where(t.method_state.c.method_id == method_id)
                )
                or 0
            )
            new = hotp.resync(
                key,
                first.strip(),
                second.strip(),
                counter,
                window=window,
                digits=row.digits,
                algorithm=row.algorithm,
            )
            if new is not None:
                forward(conn, method_id, "hotp", new)
            self._audit(
                conn,
                self._event(
                    "method.resync",
                    name,
                    actor,
                    method_id=method_id,
                    result="accepted" if new else "rejected",
                ),
            )
        return new is not None

    # -- helpers --------------------------------------------------------------------------

    def user_id(self, name: str) -> int:
        with self.store.read() as conn:
            user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == name))
        if user_id is None:
            raise NotFound(f"no user named {name!r}")
        return int(user_id)

    def _method_row(self, name: str, method_id: str) -> Row[Any]:
        user_id = self.user_id(name)
        with self.store.read() as conn:
            row = conn.execute(
                select(t.methods).where(t.methods.c.id == method_id, t.methods.c.user_id == user_id)
            ).first()
        if row is None:
            raise NotFound(f"user {name!r} has no method {method_id!r}")
        return row

    def _event(
        self,
        action: str,
        name: str,
        actor: Actor,
        *,
        method_id: str = "",
        detail: str = "",
        result: str = "ok",
    ) -> AuditEvent:
        return AuditEvent(
            action=action,
            result=result,
            user_name=name,
            client=actor.client,
            method_id=method_id,
            request_id=actor.request_id,
            detail=detail,
            source_enc=actor.origin.sealed(self.store.box, name),
        )

    def _audit(self, conn: Connection, event: AuditEvent) -> None:
        conn.execute(insert(t.audit).values(event.row(self.store.node_name, time.time())))


def _user_query() -> Any:
    return select(
        t.users, t.user_state.c.failures, t.user_state.c.locked_until, t.user_state.c.bypass_until
    ).join(t.user_state, isouter=True)


_USER_BY_NAME = _user_query().where(t.users.c.name == bindparam("name"))
_SESSIONS_AFTER = select(t.users.c.sessions_after).where(t.users.c.name == bindparam("name"))
"""Both built once: every portal call about a person reads them."""


def _user_view(
    row: Row[Any], box: SecretBox, groups: dict[str, list[str]], pin: bool = False, role: str = ""
) -> UserView:
    now = time.time()
    email, phone = row.email, row.phone
    if row.contact_enc is not None:  # data format 2
        email, phone = formats.open_contact(box, row.id, row.contact_enc)
    locked = row.locked_until if row.locked_until and row.locked_until > now else None
    bypass = row.bypass_until if row.bypass_until and row.bypass_until >= now else None
    return UserView(
        name=row.name,
        display_name=row.display_name,
        email=email,
        phone=phone,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        locked_until=locked,
        failures=row.failures or 0,
        bypass_until=bypass,
        default_method=row.default_method or "",
        groups=sorted({*groups.get("manual", ()), *groups.get("directory", ())}),
        manual_groups=groups.get("manual", []),
        directory_groups=groups.get("directory", []),
        pin_set=pin,
        role=role,
    )
