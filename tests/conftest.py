"""Shared fixtures: a data directory on SQLite or on the local PostgreSQL server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from openmfa.config import Config, defaults, merge
from openmfa.install.releases import COMPILE_ENV
from openmfa.store.database import DataDir, Store
from tests.e2e.helpers import SHARED_ENV

collect_ignore_glob = ["fixtures/*"]
"""Fixture files are data (one is a script that runs inside privacyIDEA), not tests."""

PG_ADMIN = os.environ.get("OPENMFA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session", autouse=True)
def _shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """OPENMFA_TEST_SHARED: one directory for the whole run, which every pytest-xdist worker
    (each with a base directory of its own beneath it) sees; ``built_once`` keeps there what
    only one of them should build."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    saved = os.environ.get(SHARED_ENV)
    os.environ[SHARED_ENV] = str(shared)
    yield
    if saved is None:
        os.environ.pop(SHARED_ENV, None)
    else:
        os.environ[SHARED_ENV] = saved


@pytest.fixture(scope="session", autouse=True)
def _no_byte_compiling() -> Iterator[None]:
    """The suite installs dozens of releases and starts each only a few times: byte-compiling
    every package of each (13 s of CPU an install on this machine) would cost more than it saves.
    Every ``openmfa install``/``upgrade`` the tests start inherits this."""
    saved = os.environ.get(COMPILE_ENV)
    os.environ[COMPILE_ENV] = "0"
    yield
    if saved is None:
        os.environ.pop(COMPILE_ENV, None)
    else:
        os.environ[COMPILE_ENV] = saved


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps its examples and caches under the run's temporary directory, not in a
    ``.hypothesis/`` of the checkout (schemathesis's runs get a temporary working directory)."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.getbasetemp() / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


FIRST = (
    "tests/e2e/test_deployment_upgrade.py",
    "tests/e2e/test_upgrade.py",
    "tests/e2e/test_deployment_oidc.py",
    "tests/e2e/test_farm_upgrade.py",
    "tests/e2e/test_upgrade_matrix.py",
    "tests/e2e/test_container.py",
    "tests/e2e/test_farm.py",
    "tests/e2e/test_push.py",
    "tests/e2e/test_directory.py",
    "tests/e2e/test_mobile_upgrade.py",
    "tests/e2e/test_components.py",
)
"""The longest modules, longest first: ``./dev test`` runs modules on two workers
(pytest-xdist, ``--dist loadfile --no-loadscope-reorder``), which take them in this order, so
the long ones start at once instead of last."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return FIRST.index(path) if path in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


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
