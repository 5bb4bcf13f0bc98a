"""What the console's pages check alike."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,64}$")
"""A user name (or a search for one) as a filter takes it: printable, at most 64 characters."""
