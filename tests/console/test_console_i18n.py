"""The console's Dutch: every text of its templates and code has its translation, placeholders
kept (console/babel.cfg says how to extract them)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

SRC = Path(__file__).resolve().parents[2] / "src" / "openmfa"
PO = SRC / "console" / "locale" / "nl" / "LC_MESSAGES" / "messages.po"


def test_every_console_text_has_its_dutch_translation() -> None:
    method_map = [("console/**.py", "python"), ("console/templates/**.html", "jinja2")]
    options = {"console/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    wanted = set()
    for _, _, message, _, _ in extract_from_dir(
        str(SRC), method_map, options, keywords={"_": None}
    ):
        wanted.add(message if isinstance(message, str) else message[0])
    with PO.open("rb") as f:
        catalog = read_po(f, locale="nl")
    translated = {str(m.id): str(m.string) for m in catalog if m.id and m.string}
    assert len(wanted) > 50
    missing = sorted(wanted - translated.keys())
    assert missing == [], "add to messages.po (see console/babel.cfg): " + repr(missing)
    for msgid, text in translated.items():
        assert re.findall(r"%\(\w+\)s", msgid) == re.findall(r"%\(\w+\)s", text), msgid
