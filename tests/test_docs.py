"""The documentation that users rely on stays true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from openmfa.config import default_text, defaults

ROOT = Path(__file__).parent.parent


def test_configuration_reference_is_the_shipped_defaults() -> None:
    assert default_text().strip() in (ROOT / "docs" / "configuration.md").read_text()


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for section, values in defaults().items():
        for key in values:
            assert re.search(rf"\[{section}\][^|]*\b{key}\b", readme), f"[{section}] {key}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "./dev test" in (ROOT / "README.md").read_text()
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_readme_shows_the_haproxy_configuration_the_tests_run() -> None:
    """The farm tests run docs/haproxy.cfg; the README shows the same file."""
    config = (ROOT / "docs" / "haproxy.cfg").read_text()
    assert config in (ROOT / "README.md").read_text()
    assert "timeout check" in config and "fall 3 rise 2" in config
