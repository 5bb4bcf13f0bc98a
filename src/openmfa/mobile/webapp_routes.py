"""The OpenMFA Authenticator web app as the Mobile App Web Service serves it, at ``{prefix}/app/``.

    GET {prefix}/app                  -> a redirect to {prefix}/app/
    GET {prefix}/app/                 index.html
    GET {prefix}/app/<file>           a file of ``mobile/webapp/`` (.html .js .css .webmanifest
                                      .png .svg .json; subdirectories as ``dir/file``)
    GET {prefix}/app/sw.js            the service worker, ``__OPENMFA_VERSION__`` replaced
    GET {prefix}/app/strings/<lang>.json  {English: translation} for ``webapp_strings.MESSAGES``
    GET {prefix}/app/version.json     {"version": ...}
    GET {prefix}/app/brand-logo       the logo on the app's screens (``[mobile] logo_file``, else
                                      the app's icon)

Invariants owned here:

- What can be served is fixed when the service starts: the app's files are read into memory
  then (they are small), and a request's name is looked up in that table, never joined to a
  path — no request reaches any other file, whatever dots or escapes it holds.
- Every answer under ``{prefix}/app`` — files, 304s, the redirect, 404s, 405s — carries
  ``HEADERS``: a CSP that lets the app load only its own files and talk only to its own
  origin, ``nosniff``, no referrer, its own browsing context group, the camera (for scanning
  an activation QR code) for this origin only.
- The version is ``{release}-{hash}``, the hash over every file served (the translations too):
  a new release or any changed file gives a byte-wise different ``sw.js``, which is what makes
  browsers install the new service worker. ``GET {prefix}/v1/info`` says the same version.
- The brand (``[mobile] product_name``, ``logo_file``) is written into ``index.html`` and the
  manifest and served as ``brand-logo`` when the service starts, so it is part of the version:
  a changed logo or name reaches every phone at its next open, like a new release.
- ``Cache-Control: no-cache`` with an ETag (the answer's own hash): every open asks again and
  a 304 costs nothing; the service worker is what keeps the app usable offline.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import msgspec
from babel.messages.pofile import read_po
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..errors import ConfigError
from ..sdk.models import TEXT_RE, ErrorBody
from .webapp_strings import MESSAGES

log = logging.getLogger("openmfa.mobile")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; media-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), geolocation=(), microphone=()",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
LANGS = ("en", "nl")
WORKER = "sw.js"
MARK = b"__OPENMFA_VERSION__"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Routed to the app's endpoints, so that a wrong one is refused with ``HEADERS`` too."""


def packaged() -> Traversable:
    """The app's files as installed: ``openmfa/mobile/webapp/``."""
    return resources.files("openmfa").joinpath("mobile/webapp")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, TYPES["." + name.rsplit(".", 1)[-1]], f'"{digest}"')


def app_files(directory: Traversable) -> dict[str, bytes]:
    """The servable files under ``directory`` by their path in it (``index.html``,
    ``js/app.js``): known suffixes only; hidden files and directories are left out."""
    found: dict[str, bytes] = {}
    if not directory.is_dir():
        return found
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.update({f"{entry.name}/{k}": v for k, v in app_files(entry).items()})
        elif "." + entry.name.rsplit(".", 1)[-1] in TYPES:
            found[entry.name] = entry.read_bytes()
    return found


def strings(lang: str) -> dict[str, str]:
    """``{msgid: translation}`` for the app's messages, from the portal's catalogue (the text
    itself where there is no translation yet, or only a fuzzy one — as gettext does)."""
    if lang == "en":
        return {m: m for m in MESSAGES}
    po = resources.files("openmfa").joinpath(f"portal/locale/{lang}/LC_MESSAGES/messages.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    found = {}
    for msgid in MESSAGES:
        m = catalog.get(msgid)
        text = m.string if m is not None and not m.fuzzy else ""
        found[msgid] = text if isinstance(text, str) and text else msgid
    return found


LOGO = "brand-logo"
"""The logo's name in the app (fixed: the service worker's shell lists it)."""
LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".webp": "image/webp"}
LOGO_MAX_BYTES = 512 * 1024
PRODUCT = "OpenMFA Authenticator"
"""The app's name as shipped (index.html's title and header, the manifest's name)."""


@dataclass(frozen=True)
class Brand:
    """The organisation's name and logo on the app's screens."""

    product_name: str = ""
    """"": the app's own name, translated."""
    logo: bytes = b""
    logo_type: str = ""


def brand_of(product_name: str, logo_file: Path | None, setting: str) -> Brand:
    """``[mobile] product_name`` and ``logo_file``, checked (a ConfigError says what is
    wrong)."""
    name = product_name.strip()
    if len(name) > 64 or TEXT_RE.fullmatch(name) is None:
        raise ConfigError(f"{setting} product_name must be up to 64 printable characters")
    if logo_file is None:
        return Brand(name)
    kind = LOGO_TYPES.get(logo_file.suffix.lower())
    if kind is None:
        raise ConfigError(f"{setting} logo_file {logo_file} must be an .svg, .png or .webp file")
    try:
        body = logo_file.read_bytes()
    except OSError as e:
        raise ConfigError(f"{setting} logo_file {logo_file}: {e.strerror}") from None
    if not body or len(body) > LOGO_MAX_BYTES:
        raise ConfigError(f"{setting} logo_file {logo_file} must hold 1 byte to 512 KiB")
    return Brand(name, body, kind)


def branded(files: dict[str, bytes], brand: Brand) -> None:
    """The brand written into the app's files (``index.html``, the manifest) and its logo
    as ``brand-logo`` (the app's icon when none is given)."""
    files[LOGO] = brand.logo or files.get("icon.svg", b"")
    name = brand.product_name
    if not name:
        return
    page = files.get("index.html", b"").decode()
    text = html.escape(name, quote=True)
    for old, new in (
        (f"<title>{PRODUCT}</title>", f"<title>{text}</title>"),
        (
            f'<span class="product" data-t="{PRODUCT}">{PRODUCT}</span>',
            f'<span class="product">{text}</span>',
        ),
    ):
        if old not in page:
            log.warning("index.html has no %r: the product name is not shown there", old)
        page = page.replace(old, new)
    files["index.html"] = page.encode()
    if "manifest.webmanifest" in files:
        manifest = json.loads(files["manifest.webmanifest"])
        manifest["name"] = name
        manifest["short_name"] = name[:12]
        files["manifest.webmanifest"] = json.dumps(manifest, ensure_ascii=False, indent=2).encode()


def version_of(release: str, files: Mapping[str, bytes]) -> str:
    """``{release}-{first 8 hex digits of a hash over the files' names and contents}``."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return f"{release}-{h.hexdigest()[:8]}"


class WebApp:
    """The app's answers, all made when the service starts; ``routes()`` serves them."""

    def __init__(
        self,
        directory: Traversable | None = None,
        release: str = __version__,
        brand: Brand = Brand(),
    ) -> None:
        files = app_files(directory if directory is not None else packaged())
        branded(files, brand)
        if "index.html" not in files:
            log.warning("the web app's files are missing (no index.html): app/ answers 404")
        for lang in LANGS:
            body = json.dumps(strings(lang), ensure_ascii=False, sort_keys=True, indent=1)
            files[f"strings/{lang}.json"] = body.encode()
        self.version = version_of(release, files)
        files["version.json"] = json.dumps({"version": self.version}).encode()
        if WORKER in files:
            files[WORKER] = files[WORKER].replace(MARK, self.version.encode())
        logo = files.pop(LOGO)
        self.assets = {name: Asset.of(name, body) for name, body in files.items()}
        digest = hashlib.sha256(logo).hexdigest()[:20]
        self.assets[LOGO] = Asset(logo, brand.logo_type or TYPES[".svg"], f'"{digest}"')

    def routes(self) -> list[BaseRoute]:
        """``/app`` and everything under it."""
        return [
            Route("/app", self.app_redirect, methods=METHODS),
            Route("/app/{name:path}", self.app_file, methods=METHODS),
        ]

    async def app_redirect(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _refusal(405, "method_not_allowed", "the app's files are read with GET")
        # Relative, so it holds under any prefix and behind a proxy that strips one.
        return Response(status_code=307, headers={**HEADERS, "Location": "app/"})

    async def app_file(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _refusal(405, "method_not_allowed", "the app's files are read with GET")
        name = request.path_params["name"] or "index.html"
        asset = self.assets.get(name)
        if asset is None:
            return _refusal(404, "not_found", "the app has no such file")
        headers = {**HEADERS, "ETag": asset.etag}
        if _matches(request.headers.get("if-none-match", ""), asset.etag):
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(asset.body))
            return Response(b"", media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: ``*`` or a list of (weakly compared) entity tags."""
    if if_none_match.strip() == "*":
        return True
    return etag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}


def _refusal(status: int, code: str, message: str) -> Response:
    body = msgspec.json.encode(ErrorBody(code=code, message=message))
    headers = dict(HEADERS)
    if status == 405:
        headers["Allow"] = "GET, HEAD"
    return Response(body, status_code=status, media_type="application/json", headers=headers)
