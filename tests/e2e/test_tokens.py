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
