"""The one place configuration is written: every change is a record, applied and logged at once.

Invariant owned here: users, methods, API keys and settings change *only* by
``ChangeWriter.commit``, which applies each ``Change`` and appends it to the ``changes`` table in
the same transaction. The sequence number of the newest record is the configuration
*generation*: caches key on it, and a farm subordinate replays the same records with ``apply``
to reach the same state. A payload is complete (ids, times, sealed secrets), so replaying it
anywhere gives the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotMaster
from . import formats
from . import tables as t
from .database import Store
from .role import role_from

Payload = dict[str, Any]


@dataclass(frozen=True)
class Change:
    kind: str
    payload: Payload


@dataclass(frozen=True)
class AuditEvent:
    action: str
    result: str
    user_name: str = ""
    client: str = ""
    method_id: str = ""
    reason: str = ""
    request_id: str = ""
    detail: str = ""
    source_enc: str = ""
    """Where a sign-in came from, sealed (``node.audit.Origin.sealed``); "" not known."""

    def row(self, node: str, at: float) -> dict[str, Any]:
        return {
            "at": at,
            "node": node,
            "action": self.action,
            "user_name": self.user_name,
            "client": self.client,
            "method_id": self.method_id,
            "result": self.result,
            "reason": self.reason,
            "request_id": self.request_id,
            "detail": self.detail,
            "source_enc": self.source_enc,
        }


_APPLIERS: dict[str, Callable[[Connection, Payload], None]] = {}


def applier(
    kind: str,
) -> Callable[[Callable[[Connection, Payload], None]], Callable[[Connection, Payload], None]]:
    def register(
        fn: Callable[[Connection, Payload], None],
    ) -> Callable[[Connection, Payload], None]:
        _APPLIERS[kind] = fn
        return fn

    return register


def apply(conn: Connection, change: Change) -> None:
    """Apply one change record to a data set (the master's, or a subordinate's replay)."""
    _APPLIERS[change.kind](conn, change.payload)


class ChangeWriter:
    def __init__(self, store: Store) -> None:
        self.store = store

    def commit(self, changes: list[Change], audit: list[AuditEvent] | None = None) -> int:
        """Apply ``changes`` and log them, with their audit events, in one transaction.

        Returns the new generation.
        """
        now = time.time()
        try:
            return self._commit(changes, audit or [], now)
        except IntegrityError:
            raise Conflict(
                "the change conflicts with what is stored (a name or id is taken, "
                "or the record it refers to is gone); nothing was changed"
            ) from None

    def _commit(self, changes: list[Change], audit: list[AuditEvent], now: float) -> int:
        with self.store.write() as conn:
            fmt = _writable_format(conn)
            seq = 0
            for change in changes:
                apply(conn, change)
                seq = _new_id(
                    conn.execute(
                        insert(t.changes).values(
                            format=fmt, at=now, kind=change.kind, payload=change.payload
                        )
                    )
                )
            if audit:
                conn.execute(insert(t.audit), [e.row(self.store.node_name, now) for e in audit])
            return int(seq)


def check_writable(store: Store) -> None:
    """``NotMaster`` now, naming the master, if this node may not write configuration (before
    a long piece of work whose end would be refused)."""
    with store.read() as conn:
        _writable_format(conn)


def _writable_format(conn: Connection) -> int:
    """The data format to write change records in; refuses on a farm subordinate.

    In a farm that is the farm's format (``farm finalize`` moves it), so a master running a
    newer release keeps writing what every node of the farm can read; on a node on its own, the
    format of its rows. Either way it is the format of the writer's own rows (``farm.format``
    moves both), so a payload is written the way its rows are."""
    role = role_from(conn)
    if role.handing_over:
        raise NotMaster(
            "this node is handing the master role to another node (farm promote); "
            "make the change on the new master when it is done (`openmfa farm status`)"
        )
    if not role.writes:  # shared: every node writes the one database
        raise NotMaster(
            "this node is a subordinate of a farm and takes changes only from its master; "
            f"make the change on the master at {role.master_url or '?'}",
            master_url=role.master_url,
        )
    farm = dict(
        conn.execute(
            select(t.meta.c.key, t.meta.c.value).where(
                t.meta.c.key.in_(("farm.format", "data_format"))
            )
        ).all()
    )
    return int(farm.get("farm.format") or farm.get("data_format") or 1)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@applier("user.add")
def _user_add(conn: Connection, p: Payload) -> None:
    values = {k: p.get(k, "") for k in ("name", "display_name", "email", "phone")}
    values |= {"enabled": p["enabled"], "created_at": p["at"], "updated_at": p["at"]}
    if p.get("source"):  # format 5: synchronised from a directory
        values |= {"source": p["source"], "external_id": p["external_id"]}
    if "id" in p:
        values["id"] = p["id"]
    if "contact_enc" in p:  # format 2, replayed
        values["contact_enc"] = bytes.fromhex(p["contact_enc"])
    user_id = _new_id(conn.execute(insert(t.users).values(values)))
    p["id"] = user_id  # recorded in the change, so a replay creates the same id
    conn.execute(insert(t.user_state).values(user_id=user_id, failures=0))
    if "contact_enc" not in p and formats.local_format(conn) >= 2:
        _seal_contact(conn, p, user_id, p.pop("email", ""), p.pop("phone", ""))
    formats.index_contact(conn, user_id, _sealed(p))  # format 16


USER_COLUMNS = (
    "display_name",
    "email",
    "phone",
    "enabled",
    "default_method",  # format 4
    "sessions_after",  # format 4
    "name",  # format 5: a rename by the directory
    "source",  # format 5
    "external_id",  # format 5
    "language",  # format 10 (formats.LANGUAGE_FORMAT)
)


@applier("user.update")
def _user_update(conn: Connection, p: Payload) -> None:
    fields = {k: v for k, v in p["fields"].items() if k in USER_COLUMNS}
    contact = {k: fields.pop(k) for k in ("email", "phone") if k in fields}
    if "contact_enc" in p:  # format 2, replayed
        fields |= {"contact_enc": bytes.fromhex(p["contact_enc"]), "email": "", "phone": ""}
    elif contact and formats.local_format(conn) >= 2:
        row = conn.execute(
            select(t.users.c.email, t.users.c.phone, t.users.c.contact_enc).where(
                t.users.c.id == p["id"]
            )
        ).one()
        email, phone = row.email, row.phone
        if row.contact_enc is not None:
            email, phone = formats.open_contact(formats.box_of(conn), p["id"], row.contact_enc)
        p["fields"] = fields  # the record carries the sealed value only
        _seal_contact(conn, p, p["id"], contact.get("email", email), contact.get("phone", phone))
    else:
        fields |= contact
    conn.execute(
        update(t.users).where(t.users.c.id == p["id"]).values(**fields, updated_at=p["at"])
    )
    if "contact_enc" in p:  # sealed here, or replayed
        formats.index_contact(conn, p["id"], _sealed(p))  # format 16


def _sealed(p: Payload) -> bytes | None:
    return bytes.fromhex(p["contact_enc"]) if "contact_enc" in p else None


def _seal_contact(conn: Connection, p: Payload, user_id: int, email: str, phone: str) -> None:
    """Format 2: the contact details are stored, and recorded in the change, sealed."""
    sealed = formats.seal_contact(formats.box_of(conn), user_id, email, phone)
    conn.execute(
        update(t.users)
        .where(t.users.c.id == user_id)
        .values(contact_enc=sealed, email="", phone="")
    )
    p["contact_enc"] = sealed.hex()


@applier("user.delete")
def _user_delete(conn: Connection, p: Payload) -> None:
    method_ids = [
        r[0]
        for r in conn.execute(
            t.methods.select()
            .with_only_columns(t.methods.c.id)
            .where(t.methods.c.user_id == p["id"])
        )
    ]
    for mid in method_ids:
        _method_remove(conn, {"id": mid})
    conn.execute(delete(t.user_state).where(t.user_state.c.user_id == p["id"]))
    conn.execute(delete(t.passwords).where(t.passwords.c.user_id == p["id"]))
    if formats.local_format(conn) >= formats.OIDC_FORMAT:  # an id may be given again
        conn.execute(delete(t.oidc_subjects).where(t.oidc_subjects.c.user_id == p["id"]))
    if formats.local_format(conn) >= formats.GROUPS_FORMAT:  # an id may be given again
        conn.execute(delete(t.user_groups).where(t.user_groups.c.user_id == p["id"]))
    if formats.local_format(conn) >= formats.PIN_FORMAT:  # an id may be given again
        conn.execute(delete(t.user_pins).where(t.user_pins.c.user_id == p["id"]))
    if formats.local_format(conn) >= formats.REMEMBER_FORMAT:  # a name may be given again
        name = select(t.users.c.name).where(t.users.c.id == p["id"]).scalar_subquery()
        rb = t.remembered_browsers
        conn.execute(delete(rb).where(rb.c.user_name == name))
    if formats.local_format(conn) >= formats.ROLES_FORMAT:  # an id may be given again
        conn.execute(delete(t.user_roles).where(t.user_roles.c.user_id == p["id"]))
    conn.execute(delete(t.users).where(t.users.c.id == p["id"]))


@applier("method.add")
def _method_add(conn: Connection, p: Payload) -> None:
    secret = bytes.fromhex(p["secret_enc"]) if p.get("secret_enc") else None
    conn.execute(
        insert(t.methods).values(
            id=p["id"],
            user_id=p["user_id"],
            kind=p["kind"],
            label=p["label"],
            secret_enc=secret,
            digits=p["digits"],
            period=p["period"],
            algorithm=p["algorithm"],
            created_at=p["at"],
        )
    )
    conn.execute(
        insert(t.method_state).values(  # counter: format 5, an imported token's
            method_id=p["id"],
            user_id=p["user_id"],
            last_step=p.get("last_step", -1),
            counter=p.get("counter", 0),
        )
    )
    if p.get("backup_hashes"):
        conn.execute(
            insert(t.backup_codes),
            [{"method_id": p["id"], "code_hash": bytes.fromhex(h)} for h in p["backup_hashes"]],
        )
    device = p.get("device")
    if device:  # a push method (data format 3): the device's public key
        conn.execute(
            insert(t.devices).values(
                method_id=p["id"],
                user_id=p["user_id"],
                alg=device["alg"],
                public_key=bytes.fromhex(device["public_key"]),
                webpush=device.get("webpush", ""),
                counter=0,
                created_at=p["at"],
                unlock=device.get("unlock", ""),  # format 7: its screen-lock credential
            )
        )


@applier("method.remove")
def _method_remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.backup_codes).where(t.backup_codes.c.method_id == p["id"]))
    conn.execute(delete(t.devices).where(t.devices.c.method_id == p["id"]))
    conn.execute(delete(t.method_state).where(t.method_state.c.method_id == p["id"]))
    conn.execute(delete(t.methods).where(t.methods.c.id == p["id"]))
    conn.execute(  # a removed default leaves the choice to the user's other methods
        update(t.users).where(t.users.c.default_method == p["id"]).values(default_method=None)
    )
    if formats.local_format(conn) >= formats.DIRECTORY_FORMAT:  # its token is free again
        conn.execute(
            update(t.tokens)
            .where(t.tokens.c.method_id == p["id"])
            .values(user_id=None, method_id=None)
        )


@applier("method.label")
def _method_label(conn: Connection, p: Payload) -> None:
    """A method renamed by its person (data format 9)."""
    conn.execute(update(t.methods).where(t.methods.c.id == p["id"]).values(label=p["label"]))


@applier("apikey.add")
def _apikey_add(conn: Connection, p: Payload) -> None:
    conn.execute(
        insert(t.api_keys).values(
            id=p["id"],
            name=p["name"],
            scope=p["scope"],
            secret_hash=bytes.fromhex(p["secret_hash"]),
            created_at=p["at"],
            expires_at=p.get("expires_at"),
            asserts_source=bool(p.get("asserts_source", False)),  # data format 12
        )
    )


@applier("apikey.revoke")
def _apikey_revoke(conn: Connection, p: Payload) -> None:
    conn.execute(update(t.api_keys).where(t.api_keys.c.id == p["id"]).values(revoked_at=p["at"]))


@applier("user.password")
def _user_password(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.passwords).where(t.passwords.c.user_id == p["id"]))
    if p.get("hash"):
        conn.execute(
            insert(t.passwords).values(user_id=p["id"], hash=p["hash"], updated_at=p["at"])
        )


@applier("radius_client.add")
def _radius_client_add(conn: Connection, p: Payload) -> None:
    conn.execute(
        insert(t.radius_clients).values(
            name=p["name"],
            address=p["address"],
            secret_enc=bytes.fromhex(p["secret_enc"]),
            primary_auth=p["primary"],
            require_message_authenticator=p["require_ma"],
            combined=p["combined"],
            created_at=p["at"],
            push=p.get("push", "challenge"),
            hold_seconds=p.get("hold_seconds", 25.0),
            mschap=p.get("mschap", False),
            eap=p.get("eap", "off"),
            reply_attributes=p.get("reply_attributes", t.REPLY_ATTRIBUTES_DEFAULT),
        )
    )


@applier("radius_client.remove")
def _radius_client_remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.radius_clients).where(t.radius_clients.c.name == p["name"]))


@applier("token.add")
def _token_add(conn: Connection, p: Payload) -> None:
    """Format 5: tokens into the inventory (sealed seeds; a batch of one import)."""
    conn.execute(
        insert(t.tokens),
        [
            {
                "serial": k["serial"],
                "kind": k["kind"],
                "secret_enc": bytes.fromhex(k["secret_enc"]),
                "digits": k["digits"],
                "period": k["period"],
                "algorithm": k["algorithm"],
                "counter": k["counter"],
                "issuer": k.get("issuer", ""),
                "imported_at": p["at"],
            }
            for k in p["tokens"]
        ],
    )


@applier("token.assign")
def _token_assign(conn: Connection, p: Payload) -> None:
    """Format 5: an inventory token is now the method ``method_id`` of ``user_id`` (the
    ``method.add`` of the same commit made it)."""
    done = conn.execute(
        update(t.tokens)
        .where(t.tokens.c.serial == p["serial"], t.tokens.c.method_id.is_(None))
        .values(user_id=p["user_id"], method_id=p["method_id"])
    )
    if done.rowcount != 1:
        raise Conflict(f"token {p['serial']!r} is not in the inventory, or is assigned already")


@applier("token.remove")
def _token_remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.tokens).where(t.tokens.c.serial == p["serial"]))


@applier("directory.state")
def _directory_state(conn: Connection, p: Payload) -> None:
    """Format 5: a directory source's synchronisation state after a run."""
    conn.execute(delete(t.directory_sources).where(t.directory_sources.c.name == p["name"]))
    conn.execute(
        insert(t.directory_sources).values(name=p["name"], state=p["state"], updated_at=p["at"])
    )


@applier("directory.password")
def _directory_password(conn: Connection, p: Payload) -> None:
    """Format 5: a directory source's bind password, sealed (any node may become master)."""
    key = "directory.password." + str(p["name"])
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    if p.get("sealed"):
        conn.execute(insert(t.meta).values(key=key, value=p["sealed"]))


SESSION_ENDS_KEEP = 8 * 86400.0
"""Rows of ``session_ends`` older than this are dropped as new ones come: no forward-auth
cookie or portal session token lives this long (the portal refuses older ones)."""


@applier("session.end")
def _session_end(conn: Connection, p: Payload) -> None:
    """Format 6: a session ended (``session``), or every session of ``user`` before ``at``.

    The master numbers the rows in order (the next id, under its write lock) and writes the id
    into the payload before it is logged, so every node replays the same id: a portal host asks
    any node for what is new since the last id it saw."""
    se = t.session_ends
    if "id" not in p:  # the writer numbers it: two writers of one shared database that take
        p["id"] = int(conn.scalar(select(func.max(se.c.id))) or 0) + 1  # the same id conflict
    else:  # a replay (a subordinate, a resync): the same row again is the same row
        conn.execute(delete(se).where(se.c.id == p["id"]))
    conn.execute(delete(se).where(se.c.at < p["at"] - SESSION_ENDS_KEEP, se.c.id < p["id"]))
    conn.execute(
        insert(se).values(
            id=p["id"],
            user_name=p["user"],
            session=p.get("session", ""),
            at=p["at"],
            lock_until=p.get("lock_until"),
        )
    )
    if not p.get("session") and formats.local_format(conn) >= formats.REMEMBER_FORMAT:
        # Sign out everywhere, a password change, a lock, a disable: no browser of theirs
        # remembered before it is honoured again (format 14; ``node.remembered``).
        rb = t.remembered_browsers
        conn.execute(delete(rb).where(rb.c.user_name == p["user"], rb.c.created_at <= p["at"]))


@applier("farm.member")
def _farm_member(conn: Connection, p: Payload) -> None:
    """A node of the farm and the URL of its SDK (every node learns every other)."""
    key = "farm.member." + str(p["name"])
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    conn.execute(
        insert(t.meta).values(key=key, value=json.dumps({"name": p["name"], "url": p["url"]}))
    )


@applier("farm.format")
def _farm_format(conn: Connection, p: Payload) -> None:
    """The farm's data format moved forward (``farm finalize``): this node's rows move with it,
    in the same transaction, on the master and on every subordinate as it replays the record."""
    conn.execute(delete(t.meta).where(t.meta.c.key == "farm.format"))
    conn.execute(insert(t.meta).values(key="farm.format", value=str(int(p["format"]))))
    formats.forward(conn, int(p["format"]))


from . import group_records  # noqa: E402, F401, I001 - registers user.groups (data format 11)
from . import oidc_records  # noqa: E402, F401 - registers the oidc.* appliers (data format 8)
from . import policy_records  # noqa: E402, F401 - registers policy.rule.* (format 12)
from . import pin_records  # noqa: E402, F401 - registers user.pin (format 13)
from . import remember_records  # noqa: E402, F401 - registers remember.* (format 14)
from . import role_records  # noqa: E402, F401 - registers user.role (format 15)
from . import audit_records  # noqa: E402, F401 - registers audit.* (format 16)
