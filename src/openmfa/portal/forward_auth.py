"""Web forward-auth: reverse proxies (nginx ``auth_request``, Traefik ForwardAuth, Caddy
``forward_auth``) ask ``<prefix>/auth`` before each request to a protected site.

A signed-in person carries a cookie for the sites' domain: ``v2.<sealed>``, the payload (the
session's id, the person's subject, name, e-mail and display name, when the node issued the
session, when the cookie ends) sealed with AES-256-GCM under a key derived from the portal's
forward-auth key — nobody can read or forge it without that key. The check calls no node: a
few microseconds on the hot path of every proxied request. It does ask this host's revocation
view (``revocations.RevocationView``), kept current from the node every few seconds: a session
that was signed out of, or whose person signed out everywhere, was disabled, deleted or locked,
is refused within seconds on every portal host, and a host whose view is older than
``revocation_max_age_seconds`` refuses every cookie (fails closed). Every portal sharing the key
(another instance, or the next release) takes every cookie: sessions outlive an upgrade. The
version prefix lets a later format come beside this one; ``v1`` cookies (signed, readable, not
revocable) are refused — their people sign in once more. Answers: 200 with ``Remote-User`` (and
``Remote-Email``, ``Remote-Name``, ``Remote-Groups``: raw text the protected application must
escape); otherwise the sign-in page — as 401 with ``Location`` for nginx (it turns that into a
redirect with ``error_page 401 =302``), as a 302 for Traefik and Caddy, which pass the answer
on. Only addresses in the cookie's domain are returned to after the sign-in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError
from ..service_config import relative
from .revocations import RevocationView
from .seen import CookieReports

VERSION = b"v2"
MAX_SESSION_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class ForwardAuthConfig:
    cookie_domain: str
    cookie_name: str
    session_seconds: float
    key: bytes
    public_url: str
    revocation_poll_seconds: float = 2.0
    revocation_max_age_seconds: float = 30.0


def load(values: dict[str, Any], path: Path | None) -> ForwardAuthConfig | None:
    """``[forward_auth]`` of portal.toml, checked (None: off)."""
    if not values["enabled"]:
        return None
    domain = str(values["cookie_domain"]).strip().lstrip(".").lower()
    if not domain or "." not in domain or "/" in domain or ":" in domain:
        raise ConfigError(
            "[forward_auth] cookie_domain must be the protected sites' domain, like example.com"
        )
    public = str(values["public_url"]).rstrip("/")
    if not public.startswith(("http://", "https://")):
        raise ConfigError(
            "[forward_auth] public_url must be the portal's address as people reach it, like "
            "https://auth.example.com/portal"
        )
    if not in_domain(public, domain):
        raise ConfigError(f"[forward_auth] public_url must be in cookie_domain {domain}")
    name = str(values["cookie_name"])
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError("[forward_auth] cookie_name must be letters, digits, - and _")
    if values["session_minutes"] <= 0:
        raise ConfigError("[forward_auth] session_minutes must be greater than 0")
    if values["session_minutes"] > MAX_SESSION_MINUTES:
        raise ConfigError(
            f"[forward_auth] session_minutes must be at most {MAX_SESSION_MINUTES} (7 days): "
            "the node keeps what ended for 8 days"
        )
    poll = float(values.get("revocation_poll_seconds", 2.0))
    max_age = float(values.get("revocation_max_age_seconds", 30.0))
    if not 0 < poll < max_age:
        raise ConfigError(
            "[forward_auth] revocation_poll_seconds must be greater than 0 and less than "
            "revocation_max_age_seconds"
        )
    key = read_key("[forward_auth] key_file", str(values["key_file"]), path)
    return ForwardAuthConfig(
        domain, name, float(values["session_minutes"]) * 60, key, public, poll, max_age
    )


def read_key(setting: str, name: str, config: Path | None) -> bytes:
    """A shared secret from a file of hex digits (at least 32 bytes, mode 0600), named by
    ``setting`` of the config file ``config`` (relative names are beside it)."""
    key_path = relative(config, name) or Path(name)
    try:
        mode = key_path.stat().st_mode
        key = bytes.fromhex(key_path.read_text("utf-8").strip())
    except OSError as exc:
        raise ConfigError(
            f"cannot read {setting} {key_path}: {exc.strerror}; make one with "
            f"`openssl rand -hex 32 > {key_path}` (mode 0600)"
        ) from None
    except ValueError:
        raise ConfigError(f"{key_path} must hold hex digits (`openssl rand -hex 32`)") from None
    if len(key) < 32:
        raise ConfigError(f"{key_path} must hold at least 32 bytes (64 hex digits)")
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{key_path} is readable by others; chmod 600 it")
    return key


def in_domain(url: str, domain: str) -> bool:
    """``url`` is an http(s) address on ``domain`` or one of its subdomains — as a browser
    reads it too: no user-info (``https://example.com@evil.org``), no backslash (browsers take
    ``\\`` for ``/``: ``https://evil.org\\@app.example.com``), no blanks or control
    characters."""
    if "\\" in url or not url.isprintable() or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if "@" in parts.netloc or parts.scheme not in ("http", "https"):
        return False
    return host == domain or host.endswith("." + domain)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


@dataclass(frozen=True)
class Bearer:
    """Whom a forward-auth cookie names, and which session."""

    user: str
    email: str
    name: str
    session: str
    subject: str
    issued_at: float
    """When the node issued the session (the node's clock)."""


class Cookies:
    def __init__(self, cfg: ForwardAuthConfig) -> None:
        self.cfg = cfg
        key = HKDF(hashes.SHA256(), 32, None, b"openmfa forward-auth cookie v2").derive(cfg.key)
        self._aead = AESGCM(key)

    def issue(
        self,
        user: str,
        email: str,
        name: str,
        now: float,
        *,
        session: str = "",
        subject: str = "",
        issued_at: float | None = None,
    ) -> str:
        """A cookie for ``user``'s ``session`` (a new random id when none is given)."""
        payload = json.dumps(
            {
                "s": session or secrets.token_urlsafe(18),
                "j": subject,
                "u": user,
                "e": email,
                "n": name,
                "i": now if issued_at is None else issued_at,
                "x": now + self.cfg.session_seconds,
            },
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, payload, VERSION)
        return (VERSION + b"." + _b64(sealed)).decode()

    def check(self, value: bytes, now: float) -> Bearer | None:
        """The person and session a cookie names, if it is ours and not expired."""
        version, _, body = value.partition(b".")
        if version != VERSION or not body or len(body) > 4096:
            return None
        try:
            sealed = _unb64(body)
            data = json.loads(self._aead.decrypt(sealed[:12], sealed[12:], VERSION))
            if float(data["x"]) <= now:
                return None
            return Bearer(
                str(data["u"]),
                str(data["e"]),
                str(data["n"]),
                str(data["s"]),
                str(data["j"]),
                float(data["i"]),
            )
        except (ValueError, binascii.Error, KeyError, TypeError, InvalidTag):
            return None


def _cookie(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == b"cookie":
            for item in value.split(b";"):
                k, _, v = item.strip().partition(b"=")
                if k == name:
                    return v
    return None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _safe(value: str) -> bytes:
    """A header value from a person's details: no control characters, Latin-1 or dropped."""
    return "".join(c for c in value if c.isprintable()).encode("latin-1", "replace")


class ForwardAuthGate:
    """Answers the proxies' ``<path>`` before anything else runs (no session, no middleware:
    it is on the hot path of every proxied request); everything else goes to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        cfg: ForwardAuthConfig,
        path: str,
        view: RevocationView,
        reports: CookieReports | None = None,
    ) -> None:
        self.app = app
        self.cookies = Cookies(cfg)
        self.cfg = cfg
        self.path = path
        self.name = cfg.cookie_name.encode()
        self.view = view
        self.reports = reports
        """Where the sessions let through are noted for the node's "last seen" (sent in the
        background by the view's loop)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        scope["openmfa.endpoint"] = "forward_auth"  # as /metrics counts it
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        value = _cookie(headers, self.name)
        now = time.time()
        who = self.cookies.check(value, now) if value else None
        if who is not None and not self.view.started:
            await self.view.first()  # a portal mounted in a node starts its view here
        if who is not None and self.view.stands(who.subject, who.session, who.issued_at, now):
            if self.reports is not None:
                self.reports.saw(who.user, who.session)
            out = [
                (b"remote-user", _safe(who.user)),
                (b"remote-email", _safe(who.email)),
                (b"remote-name", _safe(who.name)),
                (b"remote-groups", b""),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        original = _header(headers, b"x-original-url")
        nginx = bool(original)
        if not original:  # Traefik and Caddy: X-Forwarded-Proto/Host/Uri
            host = _header(headers, b"x-forwarded-host")
            if host:
                proto = _header(headers, b"x-forwarded-proto") or "https"
                original = f"{proto}://{host}{_header(headers, b'x-forwarded-uri') or '/'}"
        target = self.cfg.public_url + "/sign-in"
        if original and in_domain(original, self.cfg.cookie_domain):
            target += "?rd=" + quote(original, safe="")
        out = [
            (b"location", target.encode("latin-1", "replace")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]
        status = 401 if nginx else 302
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": b""})
