"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pg_database

from .helpers import built_once

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every wheel the releases the tests build and install need (this tree's dependencies, the
    previous release's, setuptools to build with), fetched once per session; while it is in use
    every pip the tests start resolves from it alone (PIP_FIND_LINKS, PIP_NO_INDEX), as an
    offline site would, instead of asking the package index again for each of the ~30 installs.
    (Installing from the index itself is what `openmfa install` does outside the tests.)"""
    from .test_upgrade import RELEASES, recorded_release

    built = tmp_path_factory.mktemp("recorded")
    old = [recorded_release(built, r["version"]) for r in RELEASES]  # the upgrade matrix's

    def fetch(house: Path) -> Path:
        for wanted in ([str(ROOT), "setuptools>=77", "wheel"], *([str(w)] for w in old)):
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(house), *wanted],
                check=True,
                capture_output=True,
            )
        for own in house.glob("openmfa-*.whl"):
            own.unlink()
        return house

    house = built_once("wheelhouse", tmp_path_factory.mktemp("wheelhouse"), fetch)
    saved = {k: os.environ.get(k) for k in ("PIP_FIND_LINKS", "PIP_NO_INDEX")}
    os.environ["PIP_FIND_LINKS"], os.environ["PIP_NO_INDEX"] = str(house), "1"
    try:
        yield house
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def pg_node_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose server.toml points at a new, empty PostgreSQL database."""
    databases = pg_database()
    url = next(databases)
    try:
        dd = tmp_path / "node"
        dd.mkdir()
        (dd / "server.toml").write_text(f'[store]\nurl = "{url}"\n')
        yield dd
    finally:
        next(databases, None)
