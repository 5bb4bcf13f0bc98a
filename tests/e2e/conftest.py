"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pg_database


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
