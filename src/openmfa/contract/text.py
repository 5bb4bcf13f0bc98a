"""The wire contract's text rules and the small types every model uses."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta

SDK_VERSION = 1
"""The version of this SDK contract. Changes only add (a route, an optional field); a removal
waits one release and raises this number. A node serves ``SDK_VERSIONS``."""
SDK_VERSIONS = (1,)
"""The SDK versions this node serves (``GET /version``)."""

_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
"""Control characters (Unicode category Cc)."""
_INVISIBLE = (
    "\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f"
    "\\ufeff\\ufff9-\\ufffb"
)
"""Invisible formatting characters (soft hyphen, zero-width and direction marks): two user names
that look the same must be the same name."""
TEXT_PATTERN = f"^[^{_CONTROL}]*$"
"""Printable text: no control characters."""
_NAME_CHAR = f"[^{_CONTROL}{_INVISIBLE}/]"
NAME_PATTERN = f"^{_NAME_CHAR}*[^\\s{_CONTROL}{_INVISIBLE}/]{_NAME_CHAR}*$"
"""A user name: printable, no invisible formatting, no '/', not blank (the node trims it and
normalises it to NFC)."""
SEED_PATTERN = "^\\s*(?:[A-Za-z2-7]\\s*){26,}(?:=\\s*)*$"
"""A Base32 seed as token vendors and apps print it: any case, spaces, optional padding, at
least 26 letters (128 bits, RFC 4226's minimum)."""
TEXT_RE = re.compile(TEXT_PATTERN)
SEED_RE = re.compile(SEED_PATTERN)
"""Use with ``fullmatch`` (``$`` alone also matches before a final newline)."""
NAME_RE = re.compile(NAME_PATTERN)

Name = Annotated[
    str, Meta(min_length=1, max_length=255, extra_json_schema={"pattern": NAME_PATTERN})
]
Text = Annotated[str, Meta(max_length=255, extra_json_schema={"pattern": TEXT_PATTERN})]
Phone = Annotated[str, Meta(max_length=64, extra_json_schema={"pattern": TEXT_PATTERN})]
Code = Annotated[str, Meta(max_length=64)]
METHOD_NAME_MAX = 64
"""A method's name ("Work phone"): at most this many characters."""
Kind = Literal["totp", "hotp", "backup-codes"]
