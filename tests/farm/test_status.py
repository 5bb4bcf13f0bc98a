"""``openmfa farm status``'s view, on a real master: itself, the members never heard from."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa import __version__
from openmfa.errors import InvalidInput
from openmfa.farm import join
from openmfa.farm.status import read_status
from openmfa.store.changes import Change, ChangeWriter
from openmfa.store.database import READS_FORMATS, DataDir, Store
from tests.conftest import make_config

NOWHERE = "http://127.0.0.1:9"


def test_a_master_lists_itself_and_a_member_that_never_polled(tmp_path: Path) -> None:
    store = Store.create(DataDir(tmp_path / "node"), make_config())
    try:
        with pytest.raises(InvalidInput, match="not in a farm; `openmfa farm init` makes one"):
            read_status(store)
        m = join.make_farm(store, NOWHERE + "/a")
        ChangeWriter(store).commit([Change("farm.member", {"name": "node-b", "url": NOWHERE})])
        status = read_status(store, now=1000.0)
        with store.read() as conn:
            position = Store.generation(conn)
    finally:
        store.close()
    assert status.membership == m and status.format == store.data_format()
    me, b = status.nodes
    assert me == {
        "name": store.node_name,
        "role": "master",
        "release": __version__,
        "reads": f"{READS_FORMATS[0]}-{READS_FORMATS[1]}",
        "position": position,
        "lag": 0,
        "last_contact": 1000.0,
        "health": "ok",
    }
    assert b["name"] == "node-b" and b["health"] == "never seen" and b["position"] is None
    assert status.components == []  # no node answered with any
