"""Byte-compiling a new release: on by default, off with OPENMFA_INSTALL_COMPILE=0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from openmfa.install.releases import COMPILE_ENV, _compile


def _venv(root: Path) -> Path:
    site = root / "lib" / "python3.99" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("X = 1\n")
    (site / "pip").mkdir()
    (site / "pip" / "__init__.py").write_text("Y = 2\n")
    (site / "broken.py").write_text("def (:\n")  # does not compile: not the install's concern
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    return site


def test_a_release_is_compiled_except_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    site = _venv(tmp_path)
    _compile(tmp_path)
    assert list((site / "pkg" / "__pycache__").glob("__init__.*.pyc"))
    assert not (site / "pip" / "__pycache__").exists()


def test_compiling_can_be_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPILE_ENV, "0")
    site = _venv(tmp_path)
    _compile(tmp_path)
    assert not (site / "pkg" / "__pycache__").exists()
