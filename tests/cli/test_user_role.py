"""``openmfa user role NAME ROLE|none`` through click, in-process, against a real data
directory: ``user show`` says the role; a role not in the table, an unknown user and a data set
before format 15 are each one clear line and exit status 1; ``user list --email``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_roles_from_the_command_line(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "hana", "--data-dir", dd).exit_code == 0
    assert "console role: none" in openmfa("user", "show", "hana", "--data-dir", dd).stdout
    r = openmfa("user", "role", "hana", "helpdesk", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout == "hana is now an operator: helpdesk\n", r.output
    assert "console role: helpdesk" in openmfa("user", "show", "hana", "--data-dir", dd).stdout
    r = openmfa("user", "role", "hana", "none", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout == "hana is now no operator\n"
    assert "console role: none" in openmfa("user", "show", "hana", "--data-dir", dd).stdout

    r = openmfa("user", "role", "hana", "root", "--data-dir", dd)
    assert r.exit_code == 2 and "'root' is not one of 'admin', 'helpdesk', 'auditor', 'none'" in (
        r.stderr
    )
    r = openmfa("user", "role", "nobody", "admin", "--data-dir", dd)
    assert r.exit_code == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1

    db = sqlite3.connect(Path(dd) / "openmfa.db")
    db.execute("UPDATE meta SET value = '14' WHERE key = 'data_format'")
    db.commit()
    db.close()
    r = openmfa("user", "role", "hana", "admin", "--data-dir", dd)
    assert r.exit_code == 1 and r.stdout == "", r.output
    assert "Operator roles need data format 15" in r.stderr and r.stderr.count("\n") == 1


def test_find_people_by_email_from_the_command_line(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    for name, email in (("hana", "hana@example.org"), ("ivo", "ivo@example.org")):
        assert openmfa("user", "add", name, "--email", email, "--data-dir", dd).exit_code == 0
    r = openmfa("user", "list", "--email", "HANA@example.org", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout == "hana\tenabled\thana@example.org\n", r.output
    r = openmfa("user", "list", "--email", "nobody@example.org", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout == ""
    r = openmfa("user", "list", "--email", "", "--data-dir", dd)
    assert r.exit_code == 1 and "1 to 255 characters" in r.stderr
