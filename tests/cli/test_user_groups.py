"""``openmfa user group add|remove`` and ``openmfa user show`` through click, in-process,
against a real data directory: groups set by hand, shown apart from a directory's, and every
refusal (no such user, a bad name, a group not set by hand, a data set before format 11) one
clear line and exit status 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_groups_by_hand_are_added_shown_and_removed(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0
    shown = openmfa("user", "show", "pia", "--data-dir", dd)
    assert "groups:       (none)\n" in shown.stdout
    added = openmfa("user", "group", "add", "pia", " VPN users ", "--data-dir", dd)
    assert added.exit_code == 0 and added.stdout == "pia is in group VPN users (by hand)\n"
    again = openmfa("user", "group", "add", "pia", "VPN users", "--data-dir", dd)
    assert again.exit_code == 0  # in it already: nothing changes
    assert openmfa("user", "group", "add", "pia", "admins", "--data-dir", dd).exit_code == 0
    shown = openmfa("user", "show", "pia", "--data-dir", dd)
    assert "groups:       VPN users, admins\n  by hand:    VPN users, admins\n" in shown.stdout
    removed = openmfa("user", "group", "remove", "pia", "admins", "--data-dir", dd)
    assert removed.exit_code == 0
    assert removed.stdout == "pia is no longer in group admins by hand\n"
    assert "groups:       VPN users\n" in openmfa("user", "show", "pia", "--data-dir", dd).stdout


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0

    def refused(*args: str) -> str:
        r = openmfa("user", "group", *args, "--data-dir", dd)
        assert r.exit_code == 1 and r.stdout == "", r.output
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        return r.stderr

    assert "no user named 'nobody'" in refused("add", "nobody", "vpn")
    for bad in ("", "   ", "a/b", "a,b", "tab\there", "x" * 129, "zero\u200bwidth", "\x07"):
        assert "a group's name must be 1 to 128" in refused("add", "pia", bad), repr(bad)
    assert "is not in group 'vpn'" in refused("remove", "pia", "vpn")
    # A data set before format 11 (a farm not yet finalized): groups wait, said plainly.
    db = sqlite3.connect(Path(dd) / "openmfa.db")
    with db:
        db.execute("UPDATE meta SET value = '10' WHERE key = 'data_format'")
    db.close()
    said = refused("add", "pia", "vpn")
    assert "groups need data format 11" in said and "farm finalize" in said
