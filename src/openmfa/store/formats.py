"""Data formats: what the rows of a data set mean, and the steps that move one forward.

Schema revisions (Alembic, run by ``openmfa migrate``) only ever *add* — a column, a table — so a
release that does not know them still reads and writes the data (``meta['schema.floor']`` names
the oldest revision whose release may use it; see ``database.check_format``). Anything an older
release could not read — rows written in a new way — is a new *data format*, and the steps here
move a data set from one format to the next inside the caller's transaction.

When a data set may move forward is the caller's choice, and that is the invariant owned here:
a node on its own moves at ``openmfa migrate`` (no other node reads its data); a farm moves only
at ``openmfa farm finalize`` — the ``farm.format`` change record runs these steps on every node
as it is applied (on the shared database once) — so until then every node of the farm, old
release or new, reads every row, and rolling back to the previous release stays possible.

Format 2: a user's email and phone (personal data) are sealed at rest like the OATH seeds
(AES-256-GCM under the data key, bound to the user's id), in ``users.contact_enc``; the plain
columns are emptied. Change records of format 2 carry the sealed value, never the plain one.

Format 3: push sign-in. A method may be of kind ``push`` (a device: its public key in
``devices``, an offline TOTP seed in the method); a release that reads only up to format 2 does
not know that kind, so devices are activated only once the data set is at format 3.

Format 4: user preferences. A user's default method (``users.default_method``) and the moment
their portal sessions ended (``users.sessions_after``, "sign out everywhere") travel in
``user.update`` records that a release reading only up to format 3 would drop, so they are set
only once the data set is at format 4.

Format 5: bringing people over. A user may come from a directory source (``users.source``,
``users.external_id``) and be renamed by it (``user.update`` of ``name``); imported OATH tokens
wait in an inventory (``tokens``) and become methods whose HOTP counter starts where the token's
stands (``method.add`` with ``counter``); each source's synchronisation state travels in
``directory.state`` records. A release reading only up to format 4 would drop or refuse these,
so they are written only once the data set is at format 5.

Format 6: sessions ended. A sign-out, "sign out everywhere", a disabled, deleted or locked
person writes a ``session.end`` record (``session_ends``: the portal hosts' revocation view of
forward-auth cookies and the node's session tokens); a release reading only up to format 5 does
not know that record, so it is written only once the data set is at format 6.

Format 7: screen-lock approvals (``[mobile] require_unlock``). A device may carry the WebAuthn
credential its app registered at activation (``devices.unlock``: its id and public key, in the
``device`` of a ``method.add`` record), with which each approval proves the phone was unlocked;
a release reading only up to format 6 would drop it, leaving a device that can never approve,
so it is written only once the data set is at format 7.

Format 8: OpenID Connect. The ID-token signing keys (``oidc.key`` records: the private half
sealed under ``oidc-key:KID``), the relying parties (``oidc.client``, ``oidc.client.remove``:
applications and Microsoft Entra ID's external authentication method, their secrets hashed) and
which person an Entra account is (``oidc.subject``); a release reading only up to format 7 does
not know these records, so they are written only once the data set is at format 8. So are a
RADIUS client's relay options (``--mschap yes``, ``--eap relay``, ``--primary ntlm``): a release
reading only up to format 7 would take such a client's MS-CHAPv2 and EAP requests for PAP with
an empty password, counted toward the lock.

Format 9: method names. A person names and renames their methods ("Work phone"): a
``method.label`` record sets a method's label; a release reading only up to format 8 does not
know that record, so it is written only once the data set is at format 9.

Format 10: a person's language. The portal tells the node the language a person reads its
pages in (``users.language``), so their security notices are in it; it travels in
``user.update`` records that a release reading only up to format 9 would drop (that person's
notices would fall back to ``[notify] language`` there, and a promoted old node would lose it),
so it is written only once the data set is at format 10.

Format 11: groups. People are in groups, set by hand or by directory synchronisation
(``user_groups``, by origin): ``user.groups`` records add and remove a person's groups of one
origin; a release reading only up to format 10 does not know that record, so it is written only
once the data set is at format 11.

Format 12: policy rules. The administrators' ordered rules (``policy_rules``: who must prove
what, by channel, client, group and source network) travel in ``policy.rule.add``,
``policy.rule.move`` and ``policy.rule.remove`` records, and an API key may carry the mark that
it may say where a sign-in comes from (``api_keys.asserts_source``, in ``apikey.add``); a release
reading only up to format 11 does not know those records (and would drop the mark), so they are
written only once the data set is at format 12.

Format 13: PINs. A person's PIN (``user_pins``: its argon2id hash and its length, which is how
a field of PIN and code is split) travels in ``user.pin`` records; a release reading only up to
format 12 does not know that record (it would drop the PIN, and a node of it would let the
person sign in with the code alone where a rule asks for a PIN), so it is written only once the
data set is at format 13.

Format 14: remembered browsers. A browser a person asked to be remembered after a full sign-in
at the portal (``remembered_browsers``: the SHA-256 of the token its cookie holds, the person,
the second factor it stands for, until when) travels in ``remember.add`` and ``remember.end``
records; a release reading only up to format 13 does not know them (a record ended there would
live on at a node of it), so they are written, and the portal offers the box, only once the data
set is at format 14.

Format 15: operator roles. A person may be an operator of the administration console with a
role (``user_roles``: ``admin``, ``helpdesk`` or ``auditor``), set by ``user.role`` records; and
an API key may be of scope ``console`` (a console host, which signs operators in). A release
reading only up to format 14 does not know that record (it would drop the role) nor that scope,
so neither is written before the data set is at format 15.

Format 16: a person found by their email address. Addresses are sealed (format 2), so each
person's row carries a keyed digest of their address (``users.email_index``: ``email_index``,
an HMAC under a key derived from the data key, of the address lower-cased), kept by the
appliers of ``user.add`` and ``user.update`` on every node as they seal or replay an address. A
release reading only up to format 15 would change an address and leave its old digest (that
person found by an address they no longer have), so digests are written only once the data set
is at format 16, whose step writes everyone's. Format 16 also looks after the audit log: an
``audit.prune`` record forgets the rows older than ``[audit] retain_days`` on every node, an
``audit.erase`` record takes an erased person's name and origins out of their rows
(``store.audit_records``); a release reading only up to format 15 does not know those records.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from ..errors import Conflict, FormatTooNew
from . import tables as t
from .crypto import SecretBox

BOX = "openmfa.box"
"""Key of ``Connection.info`` where ``Store.write`` leaves the data key for the steps below."""


_LOCAL_FORMAT = select(t.meta.c.value).where(t.meta.c.key == "data_format")


def local_format(conn: Connection) -> int:
    """The data format of this data set's rows."""
    return int(conn.scalar(_LOCAL_FORMAT) or 0)


DATA_FORMAT = 16
"""The newest data format this release writes (what each one means: ``STEPS`` below)."""
READS_FORMATS = (1, DATA_FORMAT)
"""The oldest and newest data formats this release can read."""
PREFERENCES_FORMAT = 4
"""The data format that knows user preferences (default method, sessions ended)."""
DIRECTORY_FORMAT = 5
"""The data format that knows directory sources, renames, and the token inventory."""
SESSION_ENDS_FORMAT = 6
"""The data format that knows sessions ended (``session.end`` records)."""
UNLOCK_FORMAT = 7
"""The data format that knows a device's screen-lock credential (``devices.unlock``)."""
OIDC_FORMAT = 8
"""The data format that knows OpenID Connect keys, clients and Entra subjects (``oidc.*``)."""
RADIUS_RELAY_FORMAT = 8
"""The data format a RADIUS client's relay options (MS-CHAPv2, EAP, ``ntlm``) travel in."""
METHOD_NAMES_FORMAT = 9
"""The data format that knows a method renamed by its person (``method.label`` records)."""
LANGUAGE_FORMAT = 10
"""The data format that knows a person's language (``users.language`` in ``user.update``).
The lead may renumber it at a merge: this constant is the one place its number is written."""
GROUPS_FORMAT = 11
"""The data format that knows people's groups (``user.groups`` records, ``user_groups``)."""
POLICY_FORMAT = 12
"""The data format that knows policy rules (``policy.rule.*`` records, ``policy_rules``) and an
API key's ``asserts_source`` mark."""
PIN_FORMAT = 13
"""The data format that knows people's PINs (``user.pin`` records, ``user_pins``). The lead may
renumber it at a merge: this constant is the one place its number is written."""
RADIUS_CACHE_FORMAT = 13
"""The farm's data format from which a subordinate claims RADIUS caching at the master (the
``cache-take`` and ``cache-keep`` claims): every node of a farm finalized to it knows them. No
records of its own (it shares PINs' number)."""
REMEMBER_FORMAT = 14
"""The data format that knows remembered browsers (``remember.*`` records,
``remembered_browsers``). The lead may renumber it at a merge: this constant is the one place its
number is written."""
ROLES_FORMAT = 15
"""The data format that knows operator roles (``user.role`` records, ``user_roles``) and API keys
of scope ``console``. The lead may renumber it at a merge: this constant is the one place its
number is written."""
EMAIL_INDEX_FORMAT = 16
"""The data format whose rows carry a digest of each person's email address
(``users.email_index``)."""
AUDIT_CARE_FORMAT = 16
"""The data format that knows ``audit.prune`` and ``audit.erase`` records."""


def require(conn: Connection, fmt: int, what: str) -> None:
    """Conflict, saying what to do, when this data set is not yet at format ``fmt``."""
    now = local_format(conn)
    if now < fmt:
        raise Conflict(
            f"{what} need data format {fmt}; this data set is at {now}. Run `openmfa migrate` "
            "(one node) or finish the farm's upgrade with `openmfa farm finalize`"
        )


def box_of(conn: Connection) -> SecretBox:
    box = conn.info.get(BOX)
    if not isinstance(box, SecretBox):
        raise RuntimeError("a data-format step needs a connection from Store.write()")
    return box


def forward(conn: Connection, target: int) -> tuple[int, int]:
    """Move this data set's rows to format ``target`` (never back); returns (before, after)."""
    before = local_format(conn)
    if target > DATA_FORMAT:
        raise FormatTooNew(
            f"the farm moved to data format {target}; this release writes up to {DATA_FORMAT}. "
            "Upgrade this node; it keeps serving from its copy as of the last record it could read"
        )
    if target <= before:
        return before, before
    for fmt in range(before + 1, target + 1):
        STEPS[fmt](conn)
    conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
    conn.execute(insert(t.meta).values(key="data_format", value=str(target)))
    return before, target


def forward_alone(conn: Connection) -> tuple[int, int] | None:
    """On a node on its own, move to this release's format (before, after); in a farm, None:
    there ``farm finalize`` moves it, once every node reads the new format."""
    if conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "farm.id")) is not None:
        return None
    return forward(conn, DATA_FORMAT)


# -- format 2: sealed contact details ----------------------------------------------------------


def _context(user_id: int) -> str:
    return f"user:{user_id}:contact"


def seal_contact(box: SecretBox, user_id: int, email: str, phone: str) -> bytes:
    plain = json.dumps({"email": email, "phone": phone}, separators=(",", ":")).encode()
    return box.seal(plain, _context(user_id))


def open_contact(box: SecretBox, user_id: int, sealed: bytes) -> tuple[str, str]:
    said = json.loads(box.open(sealed, _context(user_id)))
    return str(said["email"]), str(said["phone"])


def _seal_contacts(conn: Connection) -> None:
    box = box_of(conn)
    rows = conn.execute(
        select(t.users.c.id, t.users.c.email, t.users.c.phone).where(
            t.users.c.contact_enc.is_(None)
        )
    ).all()
    if rows:
        conn.execute(
            update(t.users)
            .where(t.users.c.id == bindparam("uid"))
            .values(contact_enc=bindparam("sealed"), email="", phone=""),
            [{"uid": r.id, "sealed": seal_contact(box, r.id, r.email, r.phone)} for r in rows],
        )


def email_index(box: SecretBox, email: str) -> bytes | None:
    """Format 16: the digest ``users.email_index`` holds for ``email`` (None: no address)."""
    wanted = fold_email(email)
    return box.blind_index("email", wanted) if wanted else None


def fold_email(email: str) -> str:
    """An address as the digest and the search compare it: NFC, no spaces around, case-folded."""
    return unicodedata.normalize("NFC", email.strip()).casefold()


def index_contact(conn: Connection, user_id: int, sealed: bytes | None) -> None:
    """Format 16: a person's address digest, from their sealed address (``contact_enc``), once
    the data set is at format 16 (before that no digest is written: see the module's text)."""
    if local_format(conn) < EMAIL_INDEX_FORMAT:
        return
    box = box_of(conn)
    email = open_contact(box, user_id, sealed)[0] if sealed is not None else ""
    conn.execute(
        update(t.users).where(t.users.c.id == user_id).values(email_index=email_index(box, email))
    )


def _email_index(conn: Connection) -> None:
    """Every person's address digest (format 16)."""
    box = box_of(conn)
    rows = conn.execute(select(t.users.c.id, t.users.c.contact_enc, t.users.c.email)).all()
    if rows:
        conn.execute(
            update(t.users)
            .where(t.users.c.id == bindparam("uid"))
            .values(email_index=bindparam("d")),
            [
                {
                    "uid": r.id,
                    "d": email_index(
                        box, open_contact(box, r.id, r.contact_enc)[0] if r.contact_enc else r.email
                    ),
                }
                for r in rows
            ],
        )


def _push_devices(conn: Connection) -> None:
    """Nothing to rewrite: format 3 only allows rows (push methods) no earlier format has."""


def _preferences(conn: Connection) -> None:
    """Nothing to rewrite: format 4 only allows values (preferences) no earlier format has."""


def _directory_tokens(conn: Connection) -> None:
    """Nothing to rewrite: format 5 only allows rows (directory links, tokens) no earlier
    format has."""


def _session_ends(conn: Connection) -> None:
    """Nothing to rewrite: format 6 only allows rows (sessions ended) no earlier format has."""


def _device_unlock(conn: Connection) -> None:
    """Nothing to rewrite: format 7 only allows values (a device's screen-lock credential) no
    earlier format has."""


def _oidc(conn: Connection) -> None:
    """Nothing to rewrite: format 8 only allows rows (OpenID Connect keys, clients, subjects)
    no earlier format has."""


def _method_names(conn: Connection) -> None:
    """Nothing to rewrite: format 9 only allows records (a method renamed) no earlier format
    has."""


def _languages(conn: Connection) -> None:
    """Nothing to rewrite: format 10 only allows values (a person's language) no earlier
    format has."""


def _groups(conn: Connection) -> None:
    """Nothing to rewrite: format 11 only allows rows (people's groups) no earlier format
    has."""


def _policy(conn: Connection) -> None:
    """Nothing to rewrite: format 12 only allows rows (policy rules) and a mark (an API key's
    ``asserts_source``) no earlier format has."""


def _pins(conn: Connection) -> None:
    """Nothing to rewrite: format 13 only allows rows (people's PINs) no earlier format has."""


def _remembered(conn: Connection) -> None:
    """Nothing to rewrite: format 14 only allows rows (remembered browsers) no earlier format
    has."""


def _roles(conn: Connection) -> None:
    """Nothing to rewrite: format 15 only allows rows (operator roles) and a key scope
    (``console``) no earlier format has."""


STEPS: dict[int, Callable[[Connection], None]] = {
    2: _seal_contacts,
    3: _push_devices,
    4: _preferences,
    5: _directory_tokens,
    6: _session_ends,
    7: _device_unlock,
    8: _oidc,
    9: _method_names,
    LANGUAGE_FORMAT: _languages,
    GROUPS_FORMAT: _groups,
    POLICY_FORMAT: _policy,
    PIN_FORMAT: _pins,
    REMEMBER_FORMAT: _remembered,
    ROLES_FORMAT: _roles,
    EMAIL_INDEX_FORMAT: _email_index,
}
"""The step that brings rows of format N-1 to format N."""
