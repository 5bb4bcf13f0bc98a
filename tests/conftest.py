"""Shared fixtures: a data directory on SQLite or on the local PostgreSQL server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from openmfa.config import Config, defaults, merge
from openmfa.store.database import DataDir, Store

collect_ignore_glob = ["fixtures/*"]
"""Fixture files are data (one is a script that runs inside privacyIDEA), not tests."""

PG_ADMIN = os.environ.get("OPENMFA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = "openmfa_test_" + secrets.token_hex(4)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_config(**sections: dict[str, object]) -> Config:
    return Config(merge(defaults(), dict(sections), "test"), None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[DataDir, Config]]:
    """(data dir, config) for an empty node on each supported database."""
    dd = DataDir(tmp_path / "node")
    if request.param == "sqlite":
        yield dd, make_config()
        return
    gen = pg_database()
    url = next(gen)
    try:
        yield dd, make_config(store={"url": url})
    finally:
        next(gen, None)


@pytest.fixture
def store(backend: tuple[DataDir, Config]) -> Iterator[Store]:
    dd, config = backend
    s = Store.create(dd, config)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def config(backend: tuple[DataDir, Config]) -> Config:
    return backend[1]
