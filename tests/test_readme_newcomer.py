"""What the README tells a newcomer (issue 29) is there, and true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_forward_auth_headers_are_said_to_need_escaping_next_to_the_nginx_snippet() -> None:
    readme = _readme()
    snippet = readme.index("# nginx (auth_request)")
    after = readme[snippet : snippet + 2500]
    assert re.search(r"Remote-Name.{0,300}raw text", after, re.S), after
    assert "must escape" in after and "Remote-Email" in after


def test_the_authenticators_state_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from openmfa.mobile.authenticator import _state_path

    monkeypatch.delenv("OPENMFA_AUTHENTICATOR_STATE", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    default = _state_path(None)
    readme = _readme()
    assert "--state FILE" in readme and "$OPENMFA_AUTHENTICATOR_STATE" in readme
    assert "~/" + str(default.relative_to("/home/someone")) in readme


def test_audit_limit_is_said_to_show_the_newest() -> None:
    row = next(line for line in _readme().splitlines() if line.startswith("| `openmfa audit ["))
    assert "newest" in row, row


def test_the_two_commands_say_listen_moves_http_only() -> None:
    readme = _readme()
    two = readme[readme.index("## The two commands") : readme.index("## A five-minute tour")]
    assert "--radius-listen" in two and "OPENMFA_VENV" in two
