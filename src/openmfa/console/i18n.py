"""The console's languages: its own gettext catalog (``locale/nl/LC_MESSAGES/messages.po``,
made with Babel: ``pybabel extract -F babel.cfg``), compiled in memory at start; one template
environment per language offered."""

from __future__ import annotations

import io
import time
from importlib import resources

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from markupsafe import Markup


def load(lang: str) -> NullTranslations:
    if lang == "en":
        return NullTranslations()
    po = resources.files("openmfa.console").joinpath(f"locale/{lang}/LC_MESSAGES/messages.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def when(at: float | None) -> Markup:
    if not at:
        return Markup("")
    moment = time.gmtime(at)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    return Markup('<time datetime="{}">{}</time>').format(
        iso, time.strftime("%Y-%m-%d %H:%M:%S UTC", moment)
    )


def environments(
    languages: tuple[str, ...],
) -> dict[str, tuple[jinja2.Environment, NullTranslations]]:
    folder = str(resources.files("openmfa.console").joinpath("templates"))
    envs = {}
    for lang in languages:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        translations = load(lang)
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.globals["when"] = when
        envs[lang] = (env, translations)
    return envs
