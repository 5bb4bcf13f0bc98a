"""The portal's languages: gettext catalogs (``locale/<lang>/LC_MESSAGES/messages.po``, made
with Babel: ``pybabel extract`` / ``update``), compiled in memory when the portal starts, and
the language each request is shown in: the person's choice (a cookie), else the browser's
``Accept-Language``, else the first language offered."""

from __future__ import annotations

import io
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

AVAILABLE = ("en", "nl")
"""English is the templates' own text; every other language has a catalog."""
NAMES = {"en": "English", "nl": "Nederlands"}


def load(lang: str) -> NullTranslations:
    if lang == "en":
        return NullTranslations()
    po = resources.files("openmfa.portal").joinpath(f"locale/{lang}/LC_MESSAGES/messages.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def negotiate(accept_language: str, offered: tuple[str, ...]) -> str:
    """The best of ``offered`` for an ``Accept-Language`` header (``nl-BE`` -> ``nl``)."""
    prefs: list[tuple[float, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            prefs.append((-q + i * 1e-6, tag.strip().replace("-", "_")))
    wanted = [tag for _, tag in sorted(prefs)]
    try:
        found = Locale.negotiate(wanted, list(offered), sep="_")
    except (ValueError, UnknownLocaleError):
        found = None
    if found is not None:
        return found.language
    for tag in wanted:  # "nl_XX" Babel does not know still means nl
        if tag.split("_")[0].lower() in offered:
            return tag.split("_")[0].lower()
    return offered[0]
