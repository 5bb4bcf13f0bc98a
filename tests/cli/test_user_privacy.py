"""``openmfa user export`` and ``user erase`` through click, in-process, against a real data
directory: the export is JSON with the account and no secret; erase asks for --yes, then
removes the person and leaves their audit records under a pseudonym; an unknown person is one
clear line and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_export_then_erase(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert (
        openmfa("user", "add", "alice", "--email", "a@example.org", "--data-dir", dd).exit_code == 0
    )
    r = openmfa("method", "add", "alice", "totp", "--secret", SEED, "--no-qr", "--data-dir", dd)
    assert r.exit_code == 0, r.output
    r = openmfa("user", "export", "alice", "--data-dir", dd)
    said = json.loads(r.stdout)
    assert said["user"]["email"] == "a@example.org" and said["methods"][0]["kind"] == "totp"
    assert SEED not in r.stdout
    r = openmfa("user", "erase", "alice", "--data-dir", dd)
    assert r.exit_code == 2 and "add --yes" in r.stderr
    r = openmfa("user", "erase", "alice", "--yes", "--data-dir", dd)
    assert r.exit_code == 0 and r.stdout.startswith("erased alice; their audit records now say ")
    pseudonym = r.stdout.split()[-1]
    out = openmfa("audit", "--json", "--data-dir", dd).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and not [e for e in rows if e["user"] == "alice"]
    assert {e["action"] for e in rows if e["user"] == pseudonym} >= {"user.add", "user.erase"}
    r = openmfa("user", "export", "alice", "--data-dir", dd)
    assert r.exit_code == 1 and r.stderr == "error: no user named 'alice'\n", r.stderr
    r = openmfa("user", "erase", "alice", "--yes", "--data-dir", dd)
    assert r.exit_code == 1 and "no audit record names them" in r.stderr, r.stderr
