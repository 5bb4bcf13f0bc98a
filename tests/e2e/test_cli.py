"""The ``openmfa`` command as an administrator uses it, judged by ``oathtool``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .helpers import cli, init, oathtool, secret_of


def test_init_creates_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    assert token.startswith("omfa_")
    assert (dd / "openmfa.key").stat().st_mode & 0o777 == 0o600
    assert "[policy]" in (dd / "server.toml").read_text()
    cli(dd, "user", "add", "alice")
    before = (dd / "openmfa.db").read_bytes()
    again = cli(dd, "init", expect=1)
    assert "exists already" in again.stderr and "--force" in again.stderr
    assert (dd / "openmfa.db").read_bytes() == before


def test_init_force_backs_up_first(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "alice")
    old_key = (dd / "openmfa.key").read_text()
    out = cli(dd, "init", "--force").stdout
    assert "backed up the previous node to" in out
    (backup,) = (dd / "backups").iterdir()
    assert (backup / "openmfa.key").read_text() == old_key
    assert (dd / "openmfa.key").read_text() != old_key
    assert "alice" not in cli(dd, "user", "list").stdout
    # The backup is a whole node: it opens with its own key and still has alice.
    assert "alice" in cli(backup, "user", "list").stdout


def test_totp_enrolment_verified_with_oathtool(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "alice", "--email", "alice@example.org")
    out = cli(dd, "method", "add", "alice", "totp").stdout
    secret = secret_of(out)
    assert re.search(r"otpauth://totp/OpenMFA:alice\?secret=" + secret, out)
    assert "\u2588" in out or "\u2580" in out  # a QR code was drawn
    code = oathtool("--totp", "-b", secret)
    assert cli(dd, "verify", "alice", code).stdout.startswith("accepted")
    replay = cli(dd, "verify", "alice", code, expect=1)
    assert "replay" in replay.stdout
    assert (
        "wrong_code"
        in cli(dd, "verify", "alice", "000000" if code != "000000" else "111111", expect=1).stdout
    )
    cli(dd, "verify", "alice", expect=2)  # usage error


def test_totp_sha256_8_digits_60s(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "bob")
    secret = secret_of(
        cli(
            dd,
            "method",
            "add",
            "bob",
            "totp",
            "--digits",
            "8",
            "--period",
            "60",
            "--algorithm",
            "SHA256",
            "--no-qr",
        ).stdout
    )
    code = oathtool("--totp=sha256", "--digits=8", "--time-step-size=60s", "-b", secret)
    cli(dd, "verify", "bob", code)


def test_hotp_codes_from_oathtool_in_order(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "carol")
    given = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    cli(dd, "method", "add", "carol", "hotp", "--secret", given, "--no-qr")
    codes = oathtool("--hotp", "-b", "-w", "4", given).split()
    cli(dd, "verify", "carol", codes[0])
    cli(dd, "verify", "carol", codes[3])  # skipped two presses: within the look-ahead
    cli(dd, "verify", "carol", codes[2], expect=1)  # behind the counter now


def test_backup_codes_once_each(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "dave")
    out = cli(dd, "method", "add", "dave", "backup-codes").stdout
    codes = re.findall(r"^\s+(\d{5}-\d{5})$", out, re.M)
    assert len(codes) == 10
    cli(dd, "verify", "dave", codes[3])
    cli(dd, "verify", "dave", codes[3], expect=1)
    assert "9 left" in cli(dd, "method", "list", "dave").stdout


def test_bypass_is_one_time_and_audited(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "erin")
    cli(dd, "method", "add", "erin", "totp", "--no-qr")
    cli(dd, "bypass", "erin", "--seconds", "60")
    assert "bypass" in cli(dd, "verify", "erin", "").stdout
    cli(dd, "verify", "erin", "", expect=1)
    events = [
        json.loads(line)
        for line in cli(dd, "audit", "--user", "erin", "--json").stdout.splitlines()
    ]
    assert [e["action"] for e in events][-3:] == ["bypass.grant", "authenticate", "authenticate"]
    assert events[-2]["reason"] == "bypass" and events[-1]["result"] == "rejected"


def test_audit_filters_and_never_shows_codes(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "frank")
    secret = secret_of(cli(dd, "method", "add", "frank", "totp", "--no-qr").stdout)
    code = oathtool("--totp", "-b", secret)
    cli(dd, "verify", "frank", code)
    cli(dd, "verify", "nobody", "123456", expect=1)
    text = cli(dd, "audit").stdout
    assert code not in text and secret not in text
    assert "unknown_user" in text
    only = cli(dd, "audit", "--user", "frank", "--json").stdout.splitlines()
    assert only and all(json.loads(line)["user"] == "frank" for line in only)
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert cli(dd, "audit", "--since", future).stdout == ""
    assert "ISO 8601" in cli(dd, "audit", "--since", "yesterday", expect=2).stderr


def test_user_life_cycle(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "gina", "--display-name", "Gina G", "--phone", "+31 20 123")
    assert "Gina G" in cli(dd, "user", "show", "gina").stdout
    cli(dd, "user", "disable", "gina")
    assert "disabled" in cli(dd, "user", "list").stdout
    cli(dd, "bypass", "gina", "--seconds", "30")
    assert "disabled" in cli(dd, "verify", "gina", "", expect=1).stdout
    cli(dd, "user", "enable", "gina")
    cli(dd, "user", "delete", "gina")
    assert "no user named 'gina'" in cli(dd, "user", "show", "gina", expect=1).stderr
    cli(dd, "user", "add", "hank")
    assert "exists already" in cli(dd, "user", "add", "hank", expect=1).stderr


def test_apikeys(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    token = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    assert token.startswith("omfa_")
    listing = cli(dd, "apikey", "list").stdout
    assert "portal\tportal\tactive" in listing and token not in listing
    cli(dd, "apikey", "revoke", "portal")
    assert "portal\tportal\trevoked" in cli(dd, "apikey", "list").stdout
    assert (
        "exists already"
        in cli(dd, "apikey", "create", "portal", "--scope", "admin", expect=1).stderr
    )
    cli(dd, "apikey", "create", "x", "--scope", "root", expect=2)


def test_broken_config_is_explained(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cfg = dd / "server.toml"
    cfg.write_text("[server]\nlisten = \n")
    err = cli(dd, "user", "list", expect=1).stderr
    assert "not valid TOML" in err and "line 2" in err
    cfg.write_text("[policy]\nlockout_treshold = 5\n")
    assert "did you mean 'lockout_threshold'" in cli(dd, "user", "list", expect=1).stderr
    cfg.write_text("[policy]\nlockout_threshold = 'five'\n")
    assert "must be a int" in cli(dd, "user", "list", expect=1).stderr


def test_verify_without_data_file_cannot_decide(tmp_path: Path) -> None:
    proc = cli(tmp_path / "nothing-here", "verify", "alice", "123456", expect=3)
    assert "openmfa init" in proc.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    commands = [
        ["init"],
        ["serve"],
        ["migrate"],
        ["user", "add"],
        ["user", "list"],
        ["user", "show"],
        ["user", "disable"],
        ["user", "enable"],
        ["user", "delete"],
        ["method", "add"],
        ["method", "list"],
        ["method", "remove"],
        ["verify"],
        ["apikey", "create"],
        ["apikey", "list"],
        ["apikey", "revoke"],
        ["bypass"],
        ["audit"],
    ]
    for cmd in commands:
        out = cli(tmp_path, *cmd, "--help").stdout
        assert "--data-dir" in out, cmd


def test_migrate_backs_up_and_is_idempotent(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "ivy")
    out = cli(dd, "migrate").stdout
    assert "backed up the data file" in out and "at this release's schema" in out
    (backup,) = (dd / "backups").iterdir()
    assert (backup / "openmfa.db").stat().st_size > 0
    assert "ivy" in cli(dd, "user", "list").stdout


def test_default_method_and_sign_out_everywhere_from_the_command_line(tmp_path: Path) -> None:
    """The helpdesk chooses a user's default method (never backup codes) and ends every
    portal session of theirs; both are audited as the command line's."""
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "kim")
    app, codes = (
        cli(dd, "method", "add", "kim", *kind).stdout.split("method id:")[1].split()[0]
        for kind in (("totp", "--no-qr"), ("backup-codes",))
    )
    assert "(default)" not in cli(dd, "user", "show", "kim").stdout
    cli(dd, "user", "default", "kim", app)
    shown = cli(dd, "user", "show", "kim").stdout
    assert [line for line in shown.splitlines() if "(default)" in line] == [
        line for line in shown.splitlines() if app in line
    ]
    refused = cli(dd, "user", "default", "kim", codes, expect=1)
    assert "emergencies" in refused.stderr and "Traceback" not in refused.stderr
    assert "no method" in cli(dd, "user", "default", "kim", "m-nope", expect=1).stderr
    cli(dd, "user", "default", "kim")  # cleared
    assert "(default)" not in cli(dd, "user", "show", "kim").stdout
    assert "ended every portal session" in cli(dd, "user", "sign-out-everywhere", "kim").stdout
    audit = cli(dd, "audit", "--user", "kim").stdout
    assert audit.count("user.default_method") == 2 and "user.sign_out_everywhere" in audit


def test_migrate_refuses_data_it_cannot_read_before_anything_changes(tmp_path: Path) -> None:
    """The safety net of an older release's `openmfa upgrade` (which asks the new release
    nothing first): the new release's `migrate` refuses data of a format it does not read,
    naming what to do, and takes no backup, changes no file."""
    import sqlite3

    init(tmp_path)
    with sqlite3.connect(tmp_path / "openmfa.db") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'data_format'")
    before = (tmp_path / "openmfa.db").read_bytes()
    out = cli(tmp_path, "migrate", expect=1)
    assert "the data here is at format 99" in out.stderr, out.stderr
    assert "Nothing was changed" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "openmfa.db").read_bytes() == before
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir())
