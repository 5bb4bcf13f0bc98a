"""Web forward-auth: reverse proxies (nginx ``auth_request``, Traefik ForwardAuth, Caddy
``forward_auth``) ask ``<prefix>/auth`` before each request to a protected site.

A signed-in person carries a cookie for the sites' domain: ``v1.<payload>.<signature>``, the
payload (user, e-mail, name, expiry) signed with HMAC-SHA256 under the portal's forward-auth
key. The check needs no node and no session table — a few microseconds on the hot path of every
proxied request — and every portal sharing the key (another instance, or the next release) takes
every cookie: sessions outlive an upgrade. The version prefix lets a later format come beside
this one. Answers: 200 with ``Remote-User`` (and ``Remote-Email``, ``Remote-Name``,
``Remote-Groups``); otherwise the sign-in page — as 401 with ``Location`` for nginx (it turns
that into a redirect with ``error_page 401 =302``), as a 302 for Traefik and Caddy, which pass
the answer on. Only addresses in the cookie's domain are returned to after the sign-in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError
from ..service_config import relative

VERSION = b"v1"


@dataclass(frozen=True)
class ForwardAuthConfig:
    cookie_domain: str
    cookie_name: str
    session_seconds: float
    key: bytes
    public_url: str


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
    key = read_key("[forward_auth] key_file", str(values["key_file"]), path)
    return ForwardAuthConfig(domain, name, float(values["session_minutes"]) * 60, key, public)


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


class Cookies:
    def __init__(self, cfg: ForwardAuthConfig) -> None:
        self.cfg = cfg

    def _sign(self, body: bytes) -> bytes:
        return _b64(hmac.new(self.cfg.key, VERSION + b"." + body, hashlib.sha256).digest())

    def issue(self, user: str, email: str, name: str, now: float) -> str:
        expires = now + self.cfg.session_seconds
        payload = json.dumps({"u": user, "e": email, "n": name, "x": expires}).encode()
        body = _b64(payload)
        return (VERSION + b"." + body + b"." + self._sign(body)).decode()

    def check(self, value: bytes, now: float) -> dict[str, str] | None:
        """The person a cookie names, if it is ours and not expired."""
        parts = value.split(b".")
        if len(parts) != 3 or parts[0] != VERSION:
            return None
        if not hmac.compare_digest(parts[2], self._sign(parts[1])):
            return None
        try:
            data = json.loads(_unb64(parts[1]))
            if float(data["x"]) <= now:
                return None
            return {"user": str(data["u"]), "email": str(data["e"]), "name": str(data["n"])}
        except (ValueError, binascii.Error, KeyError, TypeError):
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

    def __init__(self, app: ASGIApp, cfg: ForwardAuthConfig, path: str) -> None:
        self.app = app
        self.cookies = Cookies(cfg)
        self.cfg = cfg
        self.path = path
        self.name = cfg.cookie_name.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        scope["openmfa.endpoint"] = "forward_auth"  # as /metrics counts it
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        value = _cookie(headers, self.name)
        who = self.cookies.check(value, time.time()) if value else None
        if who is not None:
            out = [
                (b"remote-user", _safe(who["user"])),
                (b"remote-email", _safe(who["email"])),
                (b"remote-name", _safe(who["name"])),
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
