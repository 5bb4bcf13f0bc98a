"""``openmfa policy list|add|move|remove|test`` through click, in-process, against a real data
directory: rules added in order, moved, removed, explained with the person's groups, and every
refusal one clear line and exit status 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_rules_are_added_listed_moved_explained_and_removed(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "group", "add", "pia", "admins", "--data-dir", dd).exit_code == 0
    added = openmfa(
        "policy", "add", "office", "--channel", "radius", "--client", "vpn",
        "--source", "10.0.0.0/8,192.0.2.0/24", "--second-factor", "skip", "--data-dir", dd,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout == (
        "added rule office at 1: channel=radius client=vpn source=10.0.0.0/8,192.0.2.0/24 "
        "-> second-factor=skip\n"
    )
    added = openmfa(
        "policy", "add", "admins", "--group", "admins", "--methods", "passkey",
        "--methods", "push", "--numbered-push", "--lockout-threshold", "3", "--data-dir", dd,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = openmfa("policy", "list", "--data-dir", dd).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["1", "office"],
        ["2", "admins"],
        ["3", "default"],
    ]
    assert listed[2].endswith("everything -> second-factor=require")
    said = openmfa(
        "policy", "test", "pia", "--channel", "radius", "--client", "vpn",
        "--source", "10.1.2.3", "--data-dir", dd,
    )  # fmt: skip
    assert said.exit_code == 0
    assert said.stdout.splitlines() == [
        "rule: office (channel=radius client=vpn source=10.0.0.0/8,192.0.2.0/24 -> "
        "second-factor=skip)",
        "groups of pia: admins",
        "  office: applies (channel radius, client vpn, source 10.1.2.3)",
    ]
    said = openmfa(
        "policy", "test", "pia", "--channel", "radius", "--client", "vpn",
        "--source", "198.51.100.1", "--data-dir", dd,
    )  # fmt: skip
    assert said.stdout.splitlines()[2:] == [
        "  office: does not match (source 198.51.100.1)",
        "  admins: applies (group admins)",
    ]
    assert openmfa("policy", "move", "admins", "1", "--data-dir", dd).stdout == (
        "moved rule admins to 1\n"
    )
    assert openmfa("policy", "remove", "office", "--data-dir", dd).exit_code == 0
    listed = openmfa("policy", "list", "--data-dir", dd).stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["admins", "default"]
    said = openmfa("policy", "test", "pia", "--channel", "sdk", "--data-dir", dd).stdout
    assert said.splitlines()[0].startswith("rule: admins")


def test_an_api_key_may_be_marked_to_assert_the_source(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    made = openmfa(
        "apikey", "create", "proxy", "--scope", "adapter", "--may-assert-source", "--data-dir", dd
    )
    assert made.exit_code == 0 and made.stdout.startswith("omfa_")
    listed = openmfa("apikey", "list", "--data-dir", dd).stdout.splitlines()
    proxy = next(line for line in listed if line.startswith("proxy\t"))
    assert proxy.endswith("\tmay assert source")
    assert all(not line.endswith("may assert source") for line in listed if line != proxy)


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0

    def refused(*args: str) -> str:
        r = openmfa("policy", *args, "--data-dir", dd)
        assert r.exit_code == 1 and r.stdout == "", r.output
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        return r.stderr

    assert "no second factor from everywhere" in refused(
        "add", "open", "--group", "contractors", "--second-factor", "skip"
    )
    ok = openmfa(
        "policy", "add", "open", "--group", "kiosk", "--second-factor", "skip",
        "--allow-no-mfa", "--data-dir", dd,
    )  # fmt: skip
    assert ok.exit_code == 0
    assert "exists already" in refused("add", "open")
    assert "is not a network" in refused("add", "x", "--source", "10.0.0.256")
    assert "'sms' is not a method" in refused("add", "x", "--methods", "totp,sms")
    assert "--client names a client" in refused("add", "x", "--client", "vpn")
    assert "a rule's name is 1 to 64" in refused("add", "bad name")
    assert "cannot be added or changed" in refused("add", "default")
    assert "the default rule always exists" in refused("remove", "default")
    assert "no policy rule named 'zz'" in refused("move", "zz", "1")
    assert "the position must be from 1 to 1" in refused("move", "open", "2")
    assert "no user named 'nobody'" in refused("test", "nobody", "--channel", "sdk")
    db = sqlite3.connect(Path(dd) / "openmfa.db")
    with db:
        db.execute("UPDATE meta SET value = '11' WHERE key = 'data_format'")
    db.close()
    said = refused("add", "later", "--methods", "totp")
    assert "policy rules need data format 12" in said and "farm finalize" in said
