"""The portal's look: the chosen theme's templates and static files, found before the shipped
Default theme's (a custom theme may change just the pages it wants), and the headers every
answer carries (one policy for every page: CSP, no framing, no sniffing, HSTS over TLS)."""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from babel.support import NullTranslations
from markupsafe import Markup
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigError
from ..sdk.models import TEXT_RE
from . import i18n
from .config import PACKAGED_THEMES, PortalConfig
from .forward_auth import ForwardAuthConfig

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def csp_for(fa: ForwardAuthConfig | None) -> str:
    """The portal's CSP; with forward-auth, a sign-in form's answer may go back to a
    protected site."""
    if fa is None:
        return CSP
    sites = f"{fa.cookie_domain}:* *.{fa.cookie_domain}:*"
    return CSP.replace("form-action 'self'", f"form-action 'self' {sites}")


def theme_loader(cfg: PortalConfig) -> jinja2.BaseLoader:
    """The chosen theme's templates, falling back to the shipped Default's."""
    folders = [cfg.themes_dir / cfg.theme / "templates", PACKAGED_THEMES / "Default" / "templates"]
    return jinja2.FileSystemLoader([str(f) for f in folders if f.is_dir()])


def static_dirs(cfg: PortalConfig) -> list[Path]:
    """Where ``/static/{file}`` looks, in order."""
    return [cfg.themes_dir / cfg.theme / "static", PACKAGED_THEMES / "Default" / "static"]


@dataclass(frozen=True)
class Look:
    """A theme's settings (``theme.toml``): the product's name and logo on every page."""

    product_name: str
    logo: str
    """The logo's address under ``/static/``, with its content's hash (a changed logo is
    fetched anew); "" for none."""


def look(cfg: PortalConfig) -> Look:
    """The chosen theme's ``theme.toml``, each setting it leaves out from the Default's."""
    values: dict[str, object] = {}
    for folder in (PACKAGED_THEMES / "Default", cfg.themes_dir / cfg.theme):
        try:
            values |= tomllib.loads((folder / "theme.toml").read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{folder / 'theme.toml'}: {e}") from None
    name, logo = values.get("product_name", ""), values.get("logo", "")
    if not isinstance(name, str) or len(name) > 64 or TEXT_RE.fullmatch(name) is None:
        raise ConfigError("theme.toml: product_name must be up to 64 printable characters")
    if not isinstance(logo, str) or "/" in logo or "\\" in logo or logo.startswith("."):
        raise ConfigError("theme.toml: logo must be the name of a file in the theme's static/")
    if not logo:
        return Look(name.strip(), "")
    found = next((d / logo for d in static_dirs(cfg) if (d / logo).is_file()), None)
    if found is None:
        raise ConfigError(f"theme.toml: logo {logo!r} is not in the theme's static/ folder")
    digest = hashlib.sha256(found.read_bytes()).hexdigest()[:12]
    return Look(name.strip(), f"{logo}?v={digest}")


def environments(cfg: PortalConfig) -> dict[str, tuple[jinja2.Environment, NullTranslations]]:
    """One template environment per offered language, with that language's translations."""
    loader = theme_loader(cfg)
    the_look = look(cfg)
    envs = {}
    for lang in cfg.languages:
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # templates are read once (a theme changed: restart the portal)
        )
        translations = i18n.load(lang)
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.globals["when"] = when
        env.globals["look"] = the_look
        envs[lang] = (env, translations)
    return envs


def when(at: float) -> Markup:
    """A moment as the pages show it: UTC in a ``<time>`` element, which the pages' script
    (``static/times.js``) writes again in the browser's own time zone."""
    moment = time.gmtime(at)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    return Markup('<time datetime="{}">{}</time>').format(
        iso, time.strftime("%Y-%m-%d %H:%M:%S UTC", moment)
    )


class SecurityHeaders:
    """Headers every answer carries: CSP, no framing, no sniffing, no referrer to other sites;
    HSTS over TLS."""

    def __init__(self, app: ASGIApp, secure: Callable[[Request], bool], csp: str = CSP) -> None:
        self.app = app
        self.secure = secure
        self.csp = csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = self.secure(Request(scope))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", self.csp))  # else: the page's own
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if tls:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
