"""``openmfa user pin set|clear`` and ``openmfa policy add --pin required --pin-elsewhere`` through
click, in-process, against a real data directory: the PIN read from standard input, ``user
show`` saying whether one is set (never the PIN or its hash), the rule's option listed and
explained, and every refusal one clear line and exit status 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_pins_and_the_rule_option(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0
    shown = openmfa("user", "show", "pia", "--data-dir", dd)
    assert "PIN:          not set" in shown.stdout
    r = openmfa("user", "pin", "set", "pia", "--pin-stdin", "--data-dir", dd, input="4711\n")
    assert r.exit_code == 0 and r.stdout == "set the PIN of pia\n", r.output
    shown = openmfa("user", "show", "pia", "--data-dir", dd).stdout
    assert "PIN:          set" in shown and "4711" not in shown and "argon2" not in shown
    r = openmfa("user", "pin", "clear", "pia", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout == "cleared the PIN of pia\n"
    assert "PIN:          not set" in openmfa("user", "show", "pia", "--data-dir", dd).stdout

    added = openmfa(
        "policy", "add", "vpn", "--channel", "radius", "--pin", "required",
        "--pin-elsewhere", "push", "--data-dir", dd,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout == (
        "added rule vpn at 1: channel=radius -> second-factor=require pin=required "
        "pin-elsewhere=push\n"
    )
    listed = openmfa("policy", "list", "--data-dir", dd).stdout
    assert "pin=required pin-elsewhere=push" in listed
    tested = openmfa("policy", "test", "pia", "--channel", "radius", "--data-dir", dd).stdout
    assert "pin-elsewhere=push" in tested


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0

    def refused(*args: str, input: str | None = None) -> str:
        r = openmfa(*args, "--data-dir", dd, input=input)
        assert r.exit_code == 1 and r.stdout == "", r.output
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        return r.stderr

    for bad in ("123", "12345678901234", "12a4", ""):
        said = refused("user", "pin", "set", "pia", "--pin-stdin", input=bad + "\n")
        assert "a PIN is 4 to 12 digits" in said
    assert "no user named 'nobody'" in refused(
        "user", "pin", "set", "nobody", "--pin-stdin", input="4711\n"
    )
    assert "use it with --pin required" in refused("policy", "add", "x", "--pin-elsewhere", "push")
    db = sqlite3.connect(Path(dd) / "openmfa.db")
    with db:
        db.execute("UPDATE meta SET value = '12' WHERE key = 'data_format'")
    db.close()
    said = refused("user", "pin", "set", "pia", "--pin-stdin", input="4711\n")
    assert "PINs need data format 13" in said and "farm finalize" in said
