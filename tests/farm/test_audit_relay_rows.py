"""The master's side of the audit relay across releases (``farm.audit_relay.receive``): a row
from a node of an older release carries no ``source_enc`` (schema 0012) and is taken with
none; a row from a newer one may carry columns this release does not know, which are left
out; a row's sealed origin is kept as sent (the farm shares one data key)."""

from __future__ import annotations

from typing import Any

from openmfa.farm.audit_relay import pending, receive
from openmfa.node import audit
from openmfa.store.changes import AuditEvent
from openmfa.store.database import Store


def _row(origin_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "origin_id": origin_id,
        "at": 1000.0 + origin_id,
        "node": "sub1",
        "action": "authenticate",
        "user_name": "ann",
        "client": "radius:vpn",
        "method_id": "",
        "result": "accepted",
        "reason": "ok",
        "request_id": f"r{origin_id}",
        "detail": "",
        **extra,
    }


def test_rows_of_older_and_newer_nodes_are_taken(store: Store) -> None:
    sealed = audit.Origin("198.51.100.23").sealed(store.box, "ann")
    rows = [
        _row(1),  # an older release: no source_enc
        _row(2, source_enc=sealed),
        _row(3, source_enc="", a_column_of_a_later_release="x"),
    ]
    assert receive(store, "sub1", rows) == 3
    assert receive(store, "sub1", rows) == 3  # again: nothing twice
    found = {e.request_id: e.address for e in audit.query(store, user="ann")}
    assert found == {"r1": "", "r2": "198.51.100.23", "r3": ""}


def test_a_row_is_sent_with_its_sealed_origin(store: Store) -> None:
    sealed = audit.Origin("192.0.2.7", "Firefox", "Android").sealed(store.box, "ann")
    audit.record(store, AuditEvent("authenticate", "accepted", user_name="ann", source_enc=sealed))
    (row,) = [r for r in pending(store) if r["user_name"] == "ann"]
    assert row["source_enc"] == sealed and "192.0.2.7" not in str(row)
