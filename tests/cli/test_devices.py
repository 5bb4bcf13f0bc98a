"""``openmfa device activate`` through click, in-process, against a real data directory: the
code, the mobile service's address and the link that opens the web app (what the QR code
carries), for typing, sending or scanning."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_activate_prints_the_code_the_address_and_the_apps_link(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0
    r = openmfa("device", "activate", "pia", "--data-dir", dd)
    assert r.exit_code == 0, r.output
    code = re.search(r"^activation code: (\S+)$", r.stdout, re.M)
    url = re.search(r"^activation url:  (\S+)$", r.stdout, re.M)
    assert code and url, r.stdout
    link = f"{url.group(1)}/app/#activate={code.group(1)}"
    assert f"\napp link:        {link}\n" in r.stdout
    assert "█" in r.stdout or "▀" in r.stdout  # the QR code, drawn
    plain = openmfa("device", "activate", "pia", "--no-qr", "--data-dir", dd)
    assert "█" not in plain.stdout and "▀" not in plain.stdout
    as_json = json.loads(openmfa("device", "activate", "pia", "--json", "--data-dir", dd).stdout)
    assert as_json["qr_text"] == f"{as_json['url']}/app/#activate={as_json['code']}"
