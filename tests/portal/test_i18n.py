"""The portal's languages: every text of the templates and the portal's code has its Dutch
translation, placeholders kept; the browser's language is negotiated as people expect."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from openmfa.portal import i18n

SRC = Path(__file__).resolve().parents[2] / "src" / "openmfa"
PO = SRC / "portal" / "locale" / "nl" / "LC_MESSAGES" / "messages.po"


def extracted() -> set[str]:
    method_map = [("portal/**.py", "python"), ("themes/Default/templates/**.html", "jinja2")]
    options = {"themes/Default/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(SRC), method_map, options, keywords={"_": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_portal_text_has_its_dutch_translation() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f, locale="nl")
    translated = {str(m.id): str(m.string) for m in catalog if m.id and m.string}
    wanted = extracted()
    assert len(wanted) > 80
    missing = sorted(wanted - translated.keys())
    assert missing == [], "add to messages.po (see portal/babel.cfg): " + repr(missing)
    for msgid, text in translated.items():
        assert re.findall(r"%\(\w+\)s", msgid) == re.findall(r"%\(\w+\)s", text), msgid


def test_the_catalog_loads_and_translates() -> None:
    nl = i18n.load("nl")
    assert nl.gettext("Verification code") == "Verificatiecode"
    assert i18n.load("en").gettext("Verification code") == "Verification code"


def test_the_browsers_language_is_negotiated() -> None:
    offered = ("en", "nl")
    assert i18n.negotiate("nl-BE,nl;q=0.9,en;q=0.5", offered) == "nl"
    assert i18n.negotiate("fr-FR,fr;q=0.9", offered) == "en"
    assert i18n.negotiate("de;q=0.9,nl;q=0.8", offered) == "nl"
    assert i18n.negotiate("en;q=0.1,nl;q=0.9", offered) == "nl"
    assert i18n.negotiate("", offered) == "en"
    assert i18n.negotiate("nl;q=abc,,;;", offered) == "en"
    assert i18n.negotiate("nl", ("nl", "en")) == "nl"


ENGLISH = re.compile(
    r"\b(backup|bypass|sign[- ]?in|sign[- ]?out|password|phone|approve|passkeys?|push)\b", re.I
)
"""English words a Dutch page has no business showing (Dutch has its own: back-upcodes,
omzeiling, aanmelden, wachtwoord, telefoon, goedkeuren, toegangssleutel, pushmelding)."""
SAME_IN_DUTCH = {"Code", "Account", "OpenMFA Authenticator", "({seconds} s)", "Browser"}
"""Words Dutch writes as English does (and the product name)."""


def test_no_english_is_left_in_the_dutch_catalog() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f, locale="nl")
    left = []
    for m in catalog:
        if not m.id:
            continue
        text = str(m.string)
        # "(passkey)" after the Dutch word says what it is called elsewhere.
        if (text == str(m.id) and text not in SAME_IN_DUTCH) or ENGLISH.search(
            text.replace("(passkey)", "")
        ):
            left.append(text)
    assert left == [], "\n".join(left)
