"""Tables of the data file (SQLAlchemy Core). The Alembic revisions in ``migrations/`` create them.

Configuration (users, methods, API keys, settings) changes only through ``changes.ChangeWriter``
and is what a farm replicates. Authentication state (``user_state``, ``method_state``,
``backup_codes.used_at``) changes with every attempt and is written by ``node.authenticator``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False, default=""),
    Column("email", String(255), nullable=False, default=""),
    Column("phone", String(64), nullable=False, default=""),
    Column("contact_enc", LargeBinary, nullable=True),  # data format 2: email+phone sealed
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # schema 0005, data format 4: the user's choice of method, and "sign out everywhere"
    Column("default_method", String(32), nullable=True),
    Column("sessions_after", Float, nullable=True),
    # schema 0006, data format 5: the directory source a user is synchronised from, and the
    # user's immutable id there (entryUUID, objectGUID), so a rename follows the same person
    Column("source", String(64), nullable=True),
    Column("external_id", String(128), nullable=True),
    # schema 0012, data format 10 (``formats.LANGUAGE_FORMAT``): the language the person
    # chose on the portal, for their security notices (None: ``[notify] language``)
    Column("language", String(16), nullable=True),
    # schema 0019, data format 16 (``formats.EMAIL_INDEX_FORMAT``): a keyed digest of the
    # sealed email address (``formats.email_index``), to find a person by it
    Column("email_index", LargeBinary, nullable=True),
    Index("ix_users_source_external", "source", "external_id", unique=True),
    Index("ix_users_email_index", "email_index"),
)

user_state = Table(
    "user_state",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=True),
    Column("bypass_until", Float, nullable=True),
)

methods = Table(
    "methods",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("label", String(255), nullable=False, default=""),
    Column("secret_enc", LargeBinary, nullable=True),
    Column("digits", Integer, nullable=False, default=6),
    Column("period", Integer, nullable=False, default=30),
    Column("algorithm", String(16), nullable=False, default="SHA1"),
    Column("created_at", Float, nullable=False),
    Index("ix_methods_user", "user_id"),
)

method_state = Table(
    "method_state",
    metadata,
    Column("method_id", String(32), ForeignKey("methods.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("last_step", Integer, nullable=False, default=-1),
    Column("counter", Integer, nullable=False, default=0),
    Index("ix_method_state_user", "user_id"),
)

backup_codes = Table(
    "backup_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("method_id", String(32), ForeignKey("methods.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", LargeBinary, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_backup_codes_method", "method_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("scope", String(32), nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    # asserts_source (schema 0014, data format 12): the key may say where a sign-in comes from
    Column("asserts_source", Boolean, nullable=False, server_default=false()),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("node", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("user_name", String(255), nullable=False, default=""),
    Column("client", String(255), nullable=False, default=""),
    Column("method_id", String(32), nullable=False, default=""),
    Column("result", String(32), nullable=False),
    Column("reason", String(64), nullable=False, default=""),
    Column("request_id", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    # schema 0012 (no data format): a sign-in's address and browser, sealed (``node.audit``)
    Column("source_enc", Text, nullable=False, default="", server_default=""),
    Index("ix_audit_at", "at"),
    Index("ix_audit_user_at", "user_name", "at"),
)

AUDIT_COLUMNS = tuple(c.name for c in audit.columns if c.name != "id")
"""What an audit record carries besides its local id (in insert order)."""

changes = Table(
    "changes",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("format", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
)

passwords = Table(
    "passwords",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

REPLY_ATTRIBUTES_DEFAULT = (
    "Class,Session-Timeout,Idle-Timeout,Termination-Action,Framed-IP-Address,Framed-IP-Netmask,"
    "Framed-Route,Framed-Pool,Framed-IPv6-Prefix,Framed-IPv6-Route,Framed-IPv6-Pool,"
    "Framed-IPv6-Address,Delegated-IPv6-Prefix,Filter-Id,Acct-Interim-Interval,Tunnel-Type,"
    "Tunnel-Medium-Type,Tunnel-Private-Group-Id,Vendor-Specific"
)
"""What an upstream's Access-Accept may pass to a RADIUS client unless it says otherwise
(``radius_clients.reply_attributes``, schema 0009; the revision holds its own copy)."""

radius_clients = Table(
    "radius_clients",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("address", String(64), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),
    Column("primary_auth", String(16), nullable=False),
    Column("require_message_authenticator", Boolean, nullable=False),
    Column("combined", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("push", String(16), nullable=False, server_default="challenge"),
    Column("hold_seconds", Float, nullable=False, server_default="25"),
    # schema 0009 (no new data format: ``node.radius_clients``): MS-CHAPv2 and EAP relayed
    Column("mschap", Boolean, nullable=False, server_default=false()),
    Column("eap", String(16), nullable=False, server_default="off"),
    Column("reply_attributes", Text, nullable=False, server_default=REPLY_ATTRIBUTES_DEFAULT),
)

# -- push sign-in (schema 0004; rows of data format 3) ------------------------------------------

devices = Table(
    "devices",
    metadata,
    Column("method_id", String(32), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("alg", String(16), nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("webpush", Text, nullable=False, server_default=""),
    Column("counter", Integer, nullable=False, server_default="0"),
    # counter: the largest answer counter the device used (local state, like method_state)
    Column("created_at", Float, nullable=False),
    Column("unlock", Text, nullable=False, server_default=""),
    # unlock (schema 0008, data format 7): the screen-lock credential, JSON {"id", "key"}
    Index("ix_devices_user", "user_id"),
)
"""A push method's device: its public key and, where approvals need the phone's screen lock,
the WebAuthn credential registered at activation (configuration, replicated with
``method.add``)."""

activations = Table(
    "activations",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("label", String(255), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)
"""Single-use device activation codes, kept as hashes (local to the node that issued them)."""

push_requests = Table(
    "push_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("user_name", String(255), nullable=False),
    Column("method_id", String(32), nullable=False),
    Column("number", String(8), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("client", String(255), nullable=False, server_default=""),
    Column("source", String(64), nullable=False, server_default=""),
    Column("request_id", String(64), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_at", Float, nullable=True),
    Column("device_id", String(32), nullable=False, server_default=""),
    Column("collected_at", Float, nullable=True),  # schema 0010: a sign-in took the approval
    Index("ix_push_requests_user", "user_id", "created_at"),
)
"""Push approvals asked for, and how each ended (pending, accepted, denied, fraud, expired);
``collected_at``: when a portal sign-in took an approval (once). At the master only."""

push_blocks = Table(
    "push_blocks",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("reason", String(64), nullable=False),
)
"""Users who may get no push (a fraud report with ``fraud_action = "block_push"``)."""


# -- bringing people over (schema 0006; rows of data format 5) ---------------------------------

tokens = Table(
    "tokens",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),
    Column("digits", Integer, nullable=False),
    Column("period", Integer, nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("counter", Integer, nullable=False),
    Column("issuer", String(255), nullable=False, server_default=""),
    Column("imported_at", Float, nullable=False),
    Column("user_id", Integer, nullable=True),
    Column("method_id", String(32), nullable=True),
    Index("ix_tokens_user", "user_id"),
)
"""Imported OATH tokens (hardware or software): the seed sealed under ``token:SERIAL``; once
assigned, the user's method made from it (its own copy of the seed, sealed under its id)."""

directory_sources = Table(
    "directory_sources",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)
"""Each directory source's synchronisation state (last run, counts, the incremental cursor),
replicated so that a promoted master goes on where the old one stopped."""


# -- sessions ended (schema 0007; rows of data format 6) ----------------------------------------

session_ends = Table(
    "session_ends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("user_name", String(255), nullable=False),
    Column("session", String(64), nullable=False, server_default=""),
    Column("at", Float, nullable=False),
    Column("lock_until", Float, nullable=True),
    Index("ix_session_ends_user", "user_name", "session"),
    Index("ix_session_ends_at", "at"),
)
"""Portal and forward-auth sessions ended: one session (``session``: its id), or every session
of ``user_name`` issued before ``at`` (``session`` empty; ``lock_until``: the end of the lock
this row records, once per lock). ``at`` is when the row was recorded (never in the future).
Ids are given by the master in order,
the same on every node, so a portal host reads what is new since the last id it saw from any
node. Rows older than ``openmfa.node.session_ends.KEEP_SECONDS`` are dropped as new ones come."""


# -- OpenID Connect (schema 0010; rows of data format 8) ---------------------------------------

oidc_keys = Table(
    "oidc_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(8), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_enc", LargeBinary, nullable=False),
    Column("cert", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("signs_from", Float, nullable=False),
)
"""The ID-token signing keys (``node.oidc_keys``): the private half sealed under
``oidc-key:KID``; a key signs from ``signs_from`` until the next key of its ``alg`` does, and is
published from ``created_at`` until the last token it signed expired. ``cert``: a self-signed
X.509 certificate of an RSA key (base64 DER, the JWKS's ``x5c``)."""

oidc_clients = Table(
    "oidc_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("public", Boolean, nullable=False, default=False),
    Column("secret_hash", LargeBinary, nullable=True),
    Column("redirect_uris", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)
"""OpenID Connect relying parties (``node.oidc_clients``): an application, or Microsoft Entra
ID asking for its external authentication method (``settings``: tenant, issuer, keys)."""

oidc_subjects = Table(
    "oidc_subjects",
    metadata,
    Column("tid", String(64), primary_key=True),
    Column("oid", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("how", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_oidc_subjects_user", "user_id"),
)
"""Which person an Entra ID account (its tenant ``tid`` and object id ``oid``) is: imported or
mapped by an administrator (``how``: ``map``), or matched once by user principal name where the
client allows it (``upn``)."""

oidc_codes = Table(
    "oidc_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("granted", JSON, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_oidc_codes_expires", "expires_at"),
)
"""Authorization codes (``node.oidc_codes``): kept at the farm's master only (like push
requests), by the SHA-256 of the code; what the code grants (user, redirect URI, PKCE
challenge, nonce, how the person signed in) in ``granted``. Not configuration: not replicated."""


# -- where people are signed in (schema 0011_portal_sessions; no data format) ------------------

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("ref", String(32), primary_key=True),
    Column("user_name", String(255), nullable=False),
    Column("sessions", JSON, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("seen_enc", LargeBinary, nullable=False),
    Index("ix_portal_sessions_user", "user_name"),
    Index("ix_portal_sessions_expires", "expires_at"),
)
"""A person's signed-in browsers as the portal hosts report them (``node.portal_sessions``):
``ref`` the keyed name a page shows, ``sessions`` the node session ids the browser held (what
ending it ends), the address and user agent sealed under ``portal-session:REF``. Kept at the
farm's master only, like push requests and authorization codes; not configuration, not
replicated: a row is written by a release that knows it, read by none that does not."""


# -- groups (schema 0013_user_groups; rows of data format 11) ----------------------------------

user_groups = Table(
    "user_groups",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("origin", String(16), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("added_at", Float, nullable=False),
    Index("ix_user_groups_name", "name"),
)
"""The groups a person is in (``node.groups``), by ``origin``: ``manual`` (set by an
administrator) or ``directory`` (what the person's directory source says, nested groups
resolved). Each origin is written only by its own writer, so a synchronisation never removes a
group set by hand and ``openmfa user group remove`` never one the directory gives. Replicated by
``user.groups`` records (``group_records``)."""


# -- policy rules (schema 0014_policy_rules; rows of data format 12) ---------------------------

policy_rules = Table(
    "policy_rules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("rule", JSON, nullable=False),
    Column("changed_at", Float, nullable=False),
)
"""The administrators' policy rules (``node.policy_rules``, ``core.policy``), in the order they
are tried (``position`` 0 first); the ``default`` rule is not a row: it always exists, last.
Replicated by ``policy.rule.*`` records (``policy_records``)."""


# -- RADIUS caching (schema 0015_radius_cache) -------------------------------------------------

radius_cache = Table(
    "radius_cache",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("client", String(255), primary_key=True),
    Column("station", String(255), primary_key=True),
    Column("at", Float, nullable=False),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("methods", Text, nullable=False, server_default=""),
)
"""RADIUS caching (``node.radius_cache``): a person's last full success from one RADIUS client
and Calling-Station-Id (``at``), the requests it has let in since (``uses``) and the methods the
person had then (``methods``: their ids). Authentication state like ``user_state``: written by
the authenticator in its own transaction, never by change records; no foreign key, so a
re-bootstrap that replaces ``users`` leaves it alone (a row of a person gone is never valid: the
deletion ended every session of theirs)."""

# -- PINs (schema 0016_user_pins; rows of data format 13) --------------------------------------

user_pins = Table(
    "user_pins",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("hash", String(255), nullable=False),
    Column("length", Integer, nullable=False),
    Column("set_at", Float, nullable=False),
)
"""A person's PIN (``node.pins``): its argon2id hash, and its length — a field of PIN and code is
split there (the PIN first), so one argon2 check decides it. The length tells nothing the hash
does not: whoever holds the hash can try every PIN of 4 to 12 digits anyway. Replicated by
``user.pin`` records (``pin_records``)."""


# -- remembered browsers (schema 0017_remembered_browsers; rows of data format 14) -------------

remembered_browsers = Table(
    "remembered_browsers",
    metadata,
    Column("ref", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_name", String(255), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("factor", String(8), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("seen_enc", LargeBinary, nullable=False),
    Index("ix_remembered_browsers_user", "user_name"),
)
"""Browsers a person asked to be remembered (``node.remembered``): ``ref`` the name a page shows
and ends it by, ``token_hash`` the SHA-256 of the random token the browser's cookie holds (the
token itself is kept nowhere), the policy rule that allowed it, the second factor it stands for
(``factor``: an ``amr`` value, ``kind``: the method's kind, ``auth_time``: when it was given),
and the address and user agent sealed under ``remembered:REF``. Replicated by ``remember.*``
records (``remember_records``), so every node honours it and forgets it within seconds."""

# -- operator roles (schema 0018_user_roles; rows of data format 15) ---------------------------

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("role", String(32), nullable=False),
    Column("set_at", Float, nullable=False),
)
"""A person's operator role in the administration console (``node.roles``): ``admin``,
``helpdesk`` or ``auditor``; no row, no role. Replicated by ``user.role`` records
(``role_records``)."""
