"""LemonLDAP::NG asks OpenMFA for the second factor through its REST second factor.

Registered with LemonLDAP::NG's own ``lemonldap-ng-cli`` (every change is a new configuration
version there, so its ``rollback`` works too) as an extra second-factor instance under a name
that never changes, ``openmfa`` (``sfExtra.openmfa``: type REST, its verify URL carrying the
adapter key as HTTP Basic's password — the REST module cannot set headers). Versions live inside
that name.

The guard: LemonLDAP::NG lets a person in on the password alone when second factors are
required (``sfRequired``) but no second-factor module is active. So the registration also sets
the authentication level a sign-in with OpenMFA reaches and makes each protected virtual host's
default rule require it, and unregistering the last second factor while it is required is
refused: turn the requirement off first (``adapter policy off``), a step no one takes by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import ConfigError, OpenMfaError
from .config import CONFIG_VERSION, LemonLdapSettings

NAME = "openmfa"
"""The name registered in LemonLDAP::NG: stable forever (its form posts to /openmfa2fcheck)."""
NEXT = "openmfa_next"
"""The second instance an upgrade or rollback registers beside ``openmfa`` for a while."""
NEVER = "1 == 0"
"""A rule no one meets (LemonLDAP::NG takes an empty or "0" rule as "everyone")."""
VERIFY_PATH = "/v1/adapter/verify"
REDACTED = "(redacted)"
LLNG_USER = "www-data"
"""The user lemonldap-ng-cli becomes when run as root (its default ``--user``)."""


class IdpError(OpenMfaError):
    """The identity provider's tool refused or failed (its message is in ours)."""

    code = "idp_error"


@dataclass(frozen=True)
class Registration:
    """What LemonLDAP::NG holds for OpenMFA, as ``adapter status`` and ``export`` show it."""

    config_number: int
    required: bool
    instance: dict[str, Any] | None
    other_second_factors: list[str]
    protected: dict[str, str]

    def as_export(self, redact: bool) -> dict[str, Any]:
        instance = json.loads(json.dumps(self.instance)) if self.instance else None
        if instance and redact:
            over = instance.get("over", {})
            if "rest2fVerifyUrl" in over:
                over["rest2fVerifyUrl"] = redact_url(over["rest2fVerifyUrl"])
        return {
            "config_version": CONFIG_VERSION,
            "idp": "lemonldap",
            "name": NAME,
            "idp_config_number": self.config_number,
            "required": self.required,
            "instance": instance,
            "protected": self.protected,
            "other_second_factors": self.other_second_factors,
        }


def verify_url(node_url: str, key: str) -> str:
    """The REST verify URL with the key as HTTP Basic's password (``http://openmfa:KEY@…``)."""
    parts = urlsplit(node_url)
    netloc = f"{NAME}:{quote(key, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + VERIFY_PATH, "", ""))


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{REDACTED}@{host}"))


class LemonLdap:
    def __init__(self, settings: LemonLdapSettings) -> None:
        self.settings = settings
        if not os.path.exists(settings.cli):
            raise ConfigError(
                f"[lemonldap] cli {settings.cli} does not exist; install LemonLDAP::NG "
                "(Debian: lemonldap-ng) or set the path of lemonldap-ng-cli"
            )

    def _run(self, *args: str) -> str:
        env = {**os.environ, "LLNG_DEFAULTCONFFILE": self.settings.ini}
        proc = subprocess.run(
            [self.settings.cli, "-yes", "1", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if proc.returncode != 0:
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise IdpError(
                f"lemonldap-ng-cli {args[0]} failed: {said[-1] if said else proc.returncode}"
            )
        return proc.stdout

    def conf(self) -> dict[str, Any]:
        """LemonLDAP::NG's current configuration (``lemonldap-ng-cli save``)."""
        out = self._run("save")
        try:
            data = json.loads(out)
        except ValueError:
            raise IdpError("lemonldap-ng-cli save did not print its configuration") from None
        if not isinstance(data, dict):
            raise IdpError("lemonldap-ng-cli save did not print its configuration")
        return data

    def _merge(self, changes: dict[str, Any]) -> None:
        """One new LemonLDAP::NG configuration version with ``changes`` merged in."""
        # Run as root, the tool becomes the web server's user (www-data) first: the file, which
        # holds the key for a moment, is made that user's alone (a folder of its own, mode 0700).
        with tempfile.TemporaryDirectory(prefix="openmfa-llng-") as folder:
            path = os.path.join(folder, "openmfa.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(changes, f)
            if os.geteuid() == 0:
                import pwd

                try:
                    who = pwd.getpwnam(LLNG_USER)
                except KeyError:
                    raise IdpError(f"there is no user {LLNG_USER!r} for lemonldap-ng-cli") from None
                for item in (folder, path):
                    os.chown(item, who.pw_uid, who.pw_gid)
            self._run("merge", path)

    def status(self) -> Registration:
        conf = self.conf()
        extra = conf.get("sfExtra") or {}
        others = [
            key.removesuffix("2fActivation")
            for key, value in conf.items()
            if key.endswith("2fActivation") and _truthy(value)
        ]
        others += [f"sfExtra.{name}" for name in extra if name != NAME]
        rules = conf.get("locationRules") or {}
        protected = {
            host: str(rules[host].get("default", ""))
            for host in self.settings.protect
            if isinstance(rules.get(host), dict)
        }
        return Registration(
            int(conf.get("cfgNum") or 0),
            _truthy(conf.get("sfRequired")),
            extra.get(NAME),
            sorted(others),
            protected,
        )

    def instance(self, node_url: str, key: str, rule: str = "1") -> dict[str, Any]:
        return {
            "type": "REST",
            "label": self.settings.label,
            "level": self.settings.level,
            "rule": rule,
            "over": {"rest2fVerifyUrl": verify_url(node_url, key)},
        }

    def upgrade(
        self,
        to: dict[str, Any],
        saved: Path,
        say: Callable[[str], None],
        sleep: Callable[[float], None],
    ) -> Registration:
        """Move to ``to`` (``move``), keeping the registration it replaces in ``saved`` (mode
        0600: it holds the key) for ``rollback``."""
        old = self.status().instance
        if old is None:
            raise IdpError("OpenMFA is not registered here; `openmfa adapter register` first")
        fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"config_version": CONFIG_VERSION, "instance": old}, f)
        return self.move(to, say, sleep)

    def rollback(
        self, saved: Path, say: Callable[[str], None], sleep: Callable[[float], None]
    ) -> Registration:
        """Back to the registration the last upgrade replaced (the same steps, the other way;
        the one left is saved in its place, so a rollback can be undone alike)."""
        try:
            data = json.loads(saved.read_text("utf-8"))
            previous = dict(data["instance"])
        except (OSError, ValueError, KeyError, TypeError):
            raise IdpError(
                f"no earlier registration to go back to ({saved} is missing or unreadable); "
                "an upgrade saves it there"
            ) from None
        return self.upgrade(previous, saved, say, sleep)

    def move(
        self, to: dict[str, Any], say: Callable[[str], None], sleep: Callable[[float], None]
    ) -> Registration:
        """Move from the registered ``openmfa`` to ``to`` with no moment without a second
        factor: ``to`` beside it as ``openmfa_next`` for the canary, then for everyone, then
        ``openmfa`` itself becomes ``to``; ``openmfa_next`` stays (no one is sent to it) until
        the sign-in forms it gave out have expired, then goes. Each step is one LemonLDAP::NG
        configuration version, so each applies at once, whole."""
        conf = self.conf()
        extra = dict(conf.get("sfExtra") or {})
        old = extra.get(NAME)
        if old is None:
            raise IdpError("OpenMFA is not registered here; `openmfa adapter register` first")
        old = {k: v for k, v in old.items()}
        canary = self.settings.canary.strip()
        steps: list[tuple[str, dict[str, Any], float]] = []
        if canary:
            steps.append(
                (
                    f"canary ({canary})",
                    {NEXT: {**to, "rule": canary}, NAME: {**old, "rule": f"!({canary})"}},
                    self.settings.canary_seconds,
                )
            )
        steps.append(("everyone", {NEXT: {**to, "rule": "1"}, NAME: {**old, "rule": NEVER}}, 0))
        steps.append(
            ("openmfa is the new one", {NAME: {**to, "rule": "1"}, NEXT: {**to, "rule": NEVER}}, 0)
        )
        for what, instances, pause in steps:
            self._merge({"sfExtra": {**extra, **instances}})
            say(f"{what}: LemonLDAP::NG configuration {self.status().config_number}")
            if pause:
                sleep(pause)
        sleep(self.settings.grace_seconds)
        self._run("delKey", "sfExtra", NEXT)
        now = self.status()
        say(f"{NEXT} removed: LemonLDAP::NG configuration {now.config_number}")
        return now

    def register(self, node_url: str, key: str) -> Registration:
        """Register (or update in place) the ``openmfa`` second factor, require second
        factors, and guard the protected hosts: one new configuration version."""
        level = self.settings.level
        changes: dict[str, Any] = {
            "sfRequired": 1,
            "sfExtra": {NAME: self.instance(node_url, key)},
        }
        if self.settings.protect:
            changes["locationRules"] = {
                host: {"default": f"$authenticationLevel >= {level}"}
                for host in self.settings.protect
            }
        self._merge(changes)
        return self.status()

    def unregister(self) -> Registration:
        now = self.status()
        if now.instance is None:
            raise IdpError(f"LemonLDAP::NG has no second factor named {NAME!r}; nothing to do")
        if now.required and not [o for o in now.other_second_factors if o != f"sfExtra.{NEXT}"]:
            raise IdpError(
                f"{NAME!r} is LemonLDAP::NG's only second factor and second factors are "
                "required: unregistering it would let people in on their password alone. "
                "Register another first, or turn the requirement off with "
                "`openmfa adapter policy off` (then nobody is asked for a second factor)"
            )
        self._run("delKey", "sfExtra", NAME)
        return self.status()

    def policy(self, require: bool) -> Registration:
        if require and self.status().instance is None:
            raise IdpError(
                "register OpenMFA first (`openmfa adapter register lemonldap`): requiring a "
                "second factor with none active lets people in on their password alone"
            )
        self._run("set", "sfRequired", "1" if require else "0")
        return self.status()


def _truthy(value: Any) -> bool:
    return str(value).strip() not in ("", "0", "None")
