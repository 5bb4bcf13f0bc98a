"""What the console's pages check alike."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,255}$")
"""A user name, a search for one or an email address as a filter takes it: printable (its
length is cut by the caller)."""
