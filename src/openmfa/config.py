"""Node configuration: ``server.toml`` over the shipped defaults (``default_server.toml``).

The shipped file is the single source of defaults *and* the commented file ``openmfa init``
writes, so the two cannot drift apart. Unknown keys and wrong types are refused with the key's
name, what was expected, and a close match when there is one.
"""

from __future__ import annotations

import difflib
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

KEEP_ALIVE_SECONDS = 75
"""How long the node, portal and mobile hosts keep an idle HTTP connection open (uvicorn's
default is 5 s). A reverse proxy keeps idle connections to its servers for reuse (HAProxy,
nginx's ``keepalive``); when a server closes one just as the proxy sends the next request on
it, that request is lost, and HAProxy then closes the person's connection without an answer
when it was not the connection's first request (the deployment scenario's long-lived portal
session met it once). Longer than the proxies keep idle connections (HAProxy purges them within
seconds, nginx's upstream ``keepalive_timeout`` is 60 s), so the proxy closes first; 75 s is
nginx's own default for clients."""

CONFIG_NAME = "server.toml"


def default_text() -> str:
    return resources.files("openmfa").joinpath("default_server.toml").read_text("utf-8")


OPTIONAL: dict[tuple[str, str], Any] = {
    ("farm", "retain_changes"): 100_000,
    ("mobile", "enabled"): False,
    ("mobile", "prefix"): "/mobile",
    ("mobile", "public_url"): "",
    ("mobile", "max_devices"): 5,
    ("mobile", "open_per_user"): 3,
    ("mobile", "min_gap_seconds"): 2.0,
    ("mobile", "request_seconds"): 60,
    ("mobile", "activation_seconds"): 600,
    ("mobile", "require_unlock"): False,
    ("mobile", "fraud_action"): "block_push",
    ("mobile", "fraud_command"): "",
    ("mobile", "fraud_webhook"): "",
    ("mobile", "app_dir"): "",
    ("mobile", "product_name"): "",
    ("mobile", "logo_file"): "",
    ("portal", "enabled"): False,
    ("portal", "prefix"): "/portal",
    ("portal", "web_config"): "",
    ("portal", "primary"): "local",
    ("portal", "ticket_seconds"): 300,
    ("portal", "session_minutes"): 15,
    ("portal", "reauth_minutes"): 5.0,
    ("portal", "passkey_rp_id"): "",
    ("portal", "self_enroll"): False,
    ("portal", "bypass_seconds"): 0,
    ("portal", "phone_region"): "",
    ("portal", "passkey_origins"): [],
    ("portal", "password_min_length"): 12,
    ("portal", "password_change"): False,
    ("console", "enabled"): False,
    ("console", "prefix"): "/console",
    ("console", "web_config"): "",
    ("oidc", "issuer"): "",
    ("oidc", "publish_ahead_hours"): 48,
    ("oidc", "id_token_seconds"): 300,
    ("oidc", "code_seconds"): 60,
    ("directory", "interval_minutes"): 60,
    ("directory", "max_changes"): 5,
    ("directory", "sources"): [],
    ("directory", "role_groups"): {},
    ("ldap", "source"): "",
    ("ntlm", "ntlm_auth"): "/usr/bin/ntlm_auth",
    ("ntlm", "domain"): "",
    ("ntlm", "smb_conf"): "",
    ("ntlm", "timeout_seconds"): 5,
    ("ntlm", "max_concurrent"): 8,
    ("notify", "host"): "",
    ("notify", "port"): 587,
    ("notify", "security"): "starttls",
    ("notify", "username"): "",
    ("notify", "password_file"): "",
    ("notify", "sender"): "",
    ("notify", "security_mailbox"): "",
    ("notify", "webhook_url"): "",
    ("notify", "language"): "en",
    ("notify", "timeout_seconds"): 10.0,
    ("audit", "retain_days"): 0,
}
"""Settings shipped commented out in default_server.toml, with their defaults here. Release
0.2.0's upgrader adds every new setting of the new release to server.toml and then reads the
file with its own, older code, which refuses a setting it does not know; a setting listed here
is not added, so an upgrade from 0.2.0 keeps working. Settings introduced after the upgrader
stopped reading the merged file with the old code can be shipped uncommented again."""


def defaults() -> dict[str, dict[str, Any]]:
    base = tomllib.loads(default_text())
    for (section, key), value in OPTIONAL.items():
        base.setdefault(section, {}).setdefault(key, value)
    return base


CHOICES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("store", "sqlite_synchronous"): ("full", "normal"),
    ("farm", "when_master_unreachable"): ("accept_local", "fail_closed"),
    ("enroll", "digits"): (6, 8),
    ("enroll", "period"): (30, 60),
    ("enroll", "algorithm"): ("SHA1", "SHA256", "SHA512"),
    ("mobile", "fraud_action"): ("block_push", "lock_user", "record"),
    ("portal", "primary"): ("local", "ldap", "radius"),
    ("notify", "security"): ("starttls", "tls", "none"),
    ("notify", "language"): ("en", "nl"),
}

AT_MOST: dict[tuple[str, str], float] = {
    ("mobile", "request_seconds"): 120,
    ("directory", "interval_minutes"): 1440,
    ("portal", "password_min_length"): 128,
}

NOT_NEGATIVE = {("audit", "retain_days")}

POSITIVE = {
    ("server", "max_body_bytes"),
    ("policy", "lockout_threshold"),
    ("policy", "lockout_minutes"),
    ("policy", "hotp_look_ahead"),
    ("policy", "hotp_resync_window"),
    ("policy", "backup_code_count"),
    ("policy", "bypass_max_seconds"),
    ("backup", "keep"),
    ("radius", "challenge_seconds"),
    ("radius", "duplicate_seconds"),
    ("ldap", "timeout_seconds"),
    ("radius_upstream", "timeout_seconds"),
    ("ntlm", "timeout_seconds"),
    ("ntlm", "max_concurrent"),
    ("farm", "claim_timeout_seconds"),
    ("farm", "retain_changes"),
    ("mobile", "max_devices"),
    ("mobile", "open_per_user"),
    ("mobile", "request_seconds"),
    ("mobile", "activation_seconds"),
    ("portal", "ticket_seconds"),
    ("portal", "session_minutes"),
    ("portal", "reauth_minutes"),
    ("portal", "password_min_length"),
    ("directory", "interval_minutes"),
    ("directory", "max_changes"),
    ("oidc", "publish_ahead_hours"),
    ("oidc", "id_token_seconds"),
    ("oidc", "code_seconds"),
    ("notify", "port"),
    ("notify", "timeout_seconds"),
}

SOURCE_DEFAULTS: dict[str, Any] = {
    "name": "",
    "kind": "ldap",
    "url": "",
    "start_tls": False,
    "ca_file": "",
    "bind_dn": "",
    "base_dns": [],
    "group": "",
    "user_filter": "",
    "id_attribute": "",
    "name_attribute": "",
    "display_name_attribute": "",
    "mail_attribute": "mail",
    "phone_attributes": ["mobile", "telephoneNumber"],
    "disabled_filter": "",
    "on_leave": "disable",
    "incremental": True,
    "page_size": 500,
    "timeout_seconds": 10,
    "groups": False,
    "group_base_dns": [],
    "group_filter": "",
    "group_name_attribute": "",
}
"""One ``[[directory.sources]]`` table: its settings and their defaults ("" means: the usual
one for the source's kind, see ``openmfa.directory.source``)."""
SOURCE_CHOICES = {"kind": ("ldap", "ad"), "on_leave": ("disable", "remove")}


@dataclass(frozen=True)
class Config:
    values: dict[str, dict[str, Any]]
    path: Path | None

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]


def load(path: Path | None) -> Config:
    """Read ``path`` (may be absent: then defaults) and check every value."""
    base = defaults()
    if path is None or not path.exists():
        return Config(base, None)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    try:
        given = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
    return Config(merge(base, given, str(path)), path)


def merge(
    base: dict[str, dict[str, Any]], given: dict[str, Any], where: str
) -> dict[str, dict[str, Any]]:
    out = {section: dict(values) for section, values in base.items()}
    for section, values in given.items():
        if section not in base:
            raise ConfigError(f"{where}: unknown section [{section}]{_hint(section, base)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table of settings")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(
                    f"{where}: unknown setting [{section}] {key}{_hint(key, base[section])}"
                )
            default = base[section][key]
            if type(value) is not type(default) and not (
                isinstance(default, float) and type(value) is int
            ):
                raise ConfigError(
                    f"{where}: [{section}] {key} must be a {type(default).__name__} "
                    f"(like {default!r}), not {value!r}"
                )
            choices = CHOICES.get((section, key))
            if choices and value not in choices:
                raise ConfigError(
                    f"{where}: [{section}] {key} = {value!r} is not one of "
                    + ", ".join(repr(c) for c in choices)
                )
            if (section, key) in POSITIVE and value <= 0:
                raise ConfigError(f"{where}: [{section}] {key} must be greater than 0")
            if (section, key) in NOT_NEGATIVE and value < 0:
                raise ConfigError(f"{where}: [{section}] {key} must be 0 or more")
            most = AT_MOST.get((section, key))
            if most is not None and value > most:
                raise ConfigError(f"{where}: [{section}] {key} must be at most {most:g}")
            out[section][key] = value
    if "directory" in given:
        out["directory"]["sources"] = _sources(out["directory"]["sources"], where)
        out["directory"]["role_groups"] = _role_groups(out["directory"]["role_groups"], where)
    return out


OPERATOR_ROLES = ("admin", "helpdesk", "auditor")
"""The administration console's roles, strongest first (``node.roles.ROLES`` says what each
may do)."""


def _role_groups(given: dict[str, Any], where: str) -> dict[str, list[str]]:
    """``[directory] role_groups``: role -> directory group names, checked."""
    out: dict[str, list[str]] = {}
    for role, groups in given.items():
        if role not in OPERATOR_ROLES:
            raise ConfigError(
                f"{where}: [directory] role_groups: {role!r} is not a role; the roles are "
                + ", ".join(OPERATOR_ROLES)
            )
        if not isinstance(groups, list) or not all(
            isinstance(g, str) and g.strip() for g in groups
        ):
            raise ConfigError(
                f"{where}: [directory] role_groups: {role} must be a list of group names, "
                'like ["mfa-admins"]'
            )
        out[role] = [unicodedata.normalize("NFC", g.strip()) for g in groups]
    return out


def _sources(given: list[Any], where: str) -> list[dict[str, Any]]:
    """Each ``[[directory.sources]]`` table over ``SOURCE_DEFAULTS``, checked."""
    out: list[dict[str, Any]] = []
    for i, table in enumerate(given, start=1):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [[directory.sources]] number {i} must be a table")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: [[directory.sources]] number {i} needs a name")
        key = "directory.sources"
        source = merge({key: SOURCE_DEFAULTS}, {key: table}, f"{where} (source {name!r})")[key]
        if not source["url"].startswith(("ldap://", "ldaps://")):
            raise ConfigError(
                f"{where}: directory source {name!r}: url must be ldap://HOST[:PORT] or "
                "ldaps://HOST[:PORT]"
            )
        for key, choices in SOURCE_CHOICES.items():
            if source[key] not in choices:
                raise ConfigError(
                    f"{where}: directory source {name!r}: {key} must be one of "
                    + ", ".join(repr(c) for c in choices)
                )
        if not source["base_dns"] and not source["group"]:
            raise ConfigError(
                f"{where}: directory source {name!r}: give base_dns (where people are) "
                "or group (whose members are synchronised)"
            )
        if source["groups"] and not (source["group_base_dns"] or source["base_dns"]):
            raise ConfigError(
                f"{where}: directory source {name!r}: groups = true needs group_base_dns "
                "(where the groups are) or base_dns"
            )
        if not 1 <= source["page_size"] <= 5000 or source["timeout_seconds"] <= 0:
            raise ConfigError(
                f"{where}: directory source {name!r}: page_size is 1 to 5000, "
                "timeout_seconds more than 0"
            )
        if any(s["name"] == name for s in out):
            raise ConfigError(f"{where}: two directory sources are named {name!r}")
        out.append(source)
    return out


def _hint(word: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port), with a clear error otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"listen address {value!r} must look like 127.0.0.1:8480 or [::1]:8480")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
