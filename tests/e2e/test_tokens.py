"""Token import as an administrator runs it (`openmfa token import` of RFC 6030's encrypted
example, the password on standard input), then the inventory over the SDK: an administrator
assigns, a signed-in person claims one by serial and code in the portal's way. Codes by
``oathtool``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from openmfa.errors import Forbidden, InvalidInput
from openmfa.sdk.client import SdkClient

from .helpers import OPENMFA, cli, init, oathtool, server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pskc"
SECRET_HEX = b"12345678901234567890".hex()
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "correct horse battery"


def _stdin(dd: Path, given: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENMFA, *args, "--data-dir", str(dd)], input=given + "\n", text=True, capture_output=True
    )


def test_import_assign_and_claim_over_cli_and_sdk(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    admin_key = init(dd)
    for name in ("jsmith", "pat"):
        cli(dd, "user", "add", name)
    figure7 = str(FIXTURES / "rfc6030-figure7.xml")
    wrong = _stdin(dd, "qwertz", "token", "import", figure7, "--password-stdin")
    assert wrong.returncode == 1 and "password or key is wrong" in wrong.stderr
    assert "qwertz" not in wrong.stderr + wrong.stdout
    dry = _stdin(dd, "qwerty", "token", "import", figure7, "--password-stdin", "--dry-run")
    assert dry.returncode == 0 and "would import 1 of 1" in dry.stdout, dry.stderr
    assert cli(dd, "token", "list").stdout == ""  # a dry run stores nothing
    done = _stdin(dd, "qwerty", "token", "import", figure7, "--password-stdin")
    assert done.returncode == 0 and "imported 1 of 1" in done.stdout, done.stderr
    csv = tmp_path / "tokens.csv"
    csv.write_text(f"serial;secret;type;digits;user\nT-9;hex:{SECRET_HEX};totp;6;jsmith\n")
    out = cli(dd, "token", "import", str(csv), "--assign-by", "user").stdout
    assert "assigned  T-9 -> jsmith" in out
    listing = cli(dd, "token", "list", "--unassigned").stdout
    assert listing.startswith("987654321\thotp/8\tSHA1\t(unassigned)")
    assert SECRET_HEX not in cli(dd, "token", "list", "--json").stdout
    assert cli(dd, "verify", "jsmith", oathtool("--totp", "-d", "6", SECRET_HEX)).returncode == 0

    subprocess.run(
        [OPENMFA, "user", "set-password", "pat", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "pat", "totp", "--secret", SEED, "--no-qr")
    portal_key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with (
        server(dd) as srv,
        SdkClient(srv.url, admin_key) as admin,
        SdkClient(srv.url, portal_key) as portal,
    ):
        free = admin.list_tokens(unassigned=True)
        assert [(k.serial, k.kind, k.digits, k.user) for k in free] == [
            ("987654321", "hotp", 8, "")
        ]
        assert [k.user for k in admin.list_tokens()] == ["", "jsmith"]
        with pytest.raises(Forbidden):
            portal.list_tokens()  # a portal key sees no inventory
        # pat signs in (password, then the app's code) and claims the token in their hand.
        ticket = portal.portal_sign_in("pat", PASSWORD).ticket
        session = portal.portal_second_factor(ticket, oathtool("--totp", "-b", SEED)).token
        with pytest.raises(InvalidInput, match="do not match a free token"):
            portal.portal_claim_token(session, "987654321", "00000000")
        code = oathtool("--hotp", "-d", "8", "-c", "0", SECRET_HEX)
        method = portal.portal_claim_token(session, "987654321", code)
        assert method.kind == "hotp" and method.label == "token 987654321"
        assert [k.user for k in admin.list_tokens()] == ["pat", "jsmith"]
        # The claimed token signs pat in with its next code; the claiming code is spent.
        assert not portal.authenticate("pat", code).accepted
        nxt = oathtool("--hotp", "-d", "8", "-c", "1", SECRET_HEX)
        assert portal.authenticate("pat", nxt).accepted
        # An administrator frees it (removing the method) and gives it to jsmith.
        admin.remove_method("pat", method.id)
        assert admin.assign_token("987654321", "jsmith").kind == "hotp"
        admin_events = [e.action for e in admin.audit(user="pat")]
        assert "token.claim" in admin_events and "token.assign" in admin_events


PI = Path(__file__).resolve().parents[1] / "fixtures" / "privacyidea"
"""An export made by a real privacyIDEA 3.14 (make_export.sh says how)."""


def test_migration_from_privacyidea(tmp_path: Path) -> None:
    """privacyIDEA's own export (`pi-tokenjanitor find export --format pi`): users from its
    resolver, their HOTP/TOTP tokens with counters and owners; each token's next code verifies
    here, the codes it already used there do not. Its PSKC export (lowercased by privacyIDEA)
    imports too."""
    dd = tmp_path / "node"
    init(dd)
    key = (PI / "export.pi.key").read_text().strip()
    wrong = _stdin(dd, "A" * 43 + "=", "token", "import", str(PI / "export.pi"), "--password-stdin")
    assert wrong.returncode == 1 and "key is wrong" in wrong.stderr
    done = _stdin(dd, key, "token", "import", str(PI / "export.pi"), "--password-stdin",
                  "--assign-by", "user", "--create-users")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "assigned  OATH0001 -> alice" in done.stdout and "user      bob added" in done.stdout
    listing = cli(dd, "token", "list").stdout
    assert "SPASS001" not in listing  # not an OATH token: nothing to bring over
    assert "OATH0002\thotp/6\tSHA1\t(unassigned)" in listing
    hotp_seed = b"12345678901234567890".hex()
    used_there = oathtool("--hotp", "-c", "2", hotp_seed)  # counter 2 was used in privacyIDEA
    assert cli(dd, "verify", "alice", used_there, expect=1).stdout.startswith("rejected")
    assert cli(dd, "verify", "alice", oathtool("--hotp", "-c", "3", hotp_seed)).returncode == 0
    totp_seed = b"12345678901234567890123456789012".hex()
    code = oathtool("--totp=sha256", "-d", "8", totp_seed)
    assert cli(dd, "verify", "bob", code).stdout.startswith("accepted")

    pskc_key = (PI / "export.pskc.key").read_text().strip()
    other = tmp_path / "other"
    init(other)
    pskc = _stdin(other, pskc_key, "token", "import", str(PI / "export.pskc"), "--password-stdin")
    assert pskc.returncode == 0 and "imported 3 of 3" in pskc.stdout, pskc.stderr
    cli(other, "user", "add", "alice")
    cli(other, "token", "assign", "OATH0001", "alice")
    # The PSKC export carries the counter too: 3.
    assert cli(other, "verify", "alice", oathtool("--hotp", "-c", "3", hotp_seed)).returncode == 0
