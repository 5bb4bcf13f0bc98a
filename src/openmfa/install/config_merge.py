"""Three-way merge of a configuration file on upgrade: the old release's defaults, the admin's
file, and the new release's defaults (tomlkit, so the admin's comments and order survive).

Invariant owned here: no value the admin wrote is ever silently lost.
- a key the admin set that still exists keeps the admin's value;
- a key the new release renamed moves, with the admin's value, to its new name;
- a key the new release removed is commented out in place (``# removed in X: key = value``) and
  reported, so the new release starts and the value is still there to read;
- a key new in this release is added with its default and the shipped comment;
- a default that changed under a key the admin never set is reported (the new default applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.items import Table

_KEY_LINE = re.compile(r"^([A-Za-z0-9_]+)\s*=")
_SECTION_LINE = re.compile(r"^\[([A-Za-z0-9_.]+)\]\s*$")


@dataclass
class MergeReport:
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    default_changed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"kept      {k}" for k in self.kept]
        out += [f"added     {k}" for k in self.added]
        out += [f"renamed   {k}" for k in self.renamed]
        out += [f"REMOVED   {k}" for k in self.removed]
        out += [f"default   {k}" for k in self.default_changed]
        return out


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{s}.{k}": v
        for s, table in doc.items()
        if isinstance(table, dict)
        for k, v in table.items()
    }


def shipped_comments(default_text: str) -> dict[str, list[str]]:
    """``section.key`` -> the comment lines right above it in a shipped defaults file."""
    out: dict[str, list[str]] = {}
    section, pending = "", list[str]()
    for raw in default_text.splitlines():
        line = raw.strip()
        if m := _SECTION_LINE.match(line):
            section, pending = m.group(1), list[str]()
        elif line.startswith("#"):
            pending.append(line.lstrip("#").strip())
        elif m := _KEY_LINE.match(line):
            out[f"{section}.{m.group(1)}"] = pending
            pending = []
        else:
            pending = []
    return out


def merge(
    old_default: str,
    admin: str,
    new_default: str,
    *,
    release: str,
    renames: dict[str, str] | None = None,
    optional: frozenset[str] = frozenset(),
) -> tuple[str, MergeReport]:
    """``optional``: the new release's settings shipped commented out (``config.OPTIONAL``,
    as SECTION.KEY): set by the admin, they are kept, never taken for removed ones."""
    renames = renames or {}
    old = _flat(tomlkit.parse(old_default).unwrap())
    new = _flat(tomlkit.parse(new_default).unwrap())
    admin_keys = _flat(tomlkit.parse(admin).unwrap())
    report = MergeReport()
    gone = {d for d in admin_keys if d not in new and d not in optional and d not in renames}
    doc = tomlkit.parse(_comment_out(admin, gone, release))
    comments = shipped_comments(new_default)

    for dotted, value in admin_keys.items():
        if dotted in new or (dotted in optional and dotted not in renames):
            report.kept.append(f"{dotted} = {value!r}")
        elif dotted in gone:
            report.removed.append(f"{dotted} = {value!r} (not used by {release}; commented out)")
        else:
            section, key = dotted.split(".", 1)
            target = renames[dotted]
            t_section, t_key = target.split(".", 1)
            table = doc[section]
            assert isinstance(table, Table)
            del table[key]
            _ensure_table(doc, t_section)[t_key] = value
            report.renamed.append(f"{dotted} -> {target} = {value!r}")

    grown: dict[str, Table] = {}
    for dotted, value in new.items():
        if dotted in old or dotted in admin_keys or dotted in renames.values():
            if dotted in old and old[dotted] != value and dotted not in admin_keys:
                report.default_changed.append(f"{dotted}: {old[dotted]!r} -> {value!r}")
            continue
        section, key = dotted.split(".", 1)
        table = _ensure_table(doc, section)
        if key in table:
            continue
        for line in comments.get(dotted, []):
            table.add(tomlkit.comment(line))
        table.add(tomlkit.comment(f"(added by the upgrade to {release})"))
        table.add(key, value)
        grown[section] = table
        report.added.append(f"{dotted} = {value!r}")
    for table in grown.values():
        table.add(tomlkit.nl())
    return tomlkit.dumps(doc), report


def _ensure_table(doc: tomlkit.TOMLDocument, section: str) -> Table:
    if section not in doc:
        doc.add(tomlkit.nl())
        doc.add(section, tomlkit.table())
    table = doc[section]
    assert isinstance(table, Table)
    return table


def _comment_out(text: str, dotted_keys: set[str], release: str) -> str:
    """Comment out ``key = value`` lines of the given keys, in place, with a note."""
    out, section = [], ""
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if m := _SECTION_LINE.match(stripped):
            section = m.group(1)
        elif (m := _KEY_LINE.match(stripped)) and f"{section}.{m.group(1)}" in dotted_keys:
            line = f"# removed in {release}: {stripped}\n"
        out.append(line)
    return "".join(out)
