"""A person's recent sign-ins (``node.audit.sign_ins``) against a real data file: newest
first, each with the channel it came by — the portal's key, a RADIUS client, an application's
key, the mobile app, the command line — and nothing of anyone else."""

from __future__ import annotations

from openmfa.node import audit
from openmfa.node.apikeys import ApiKeys
from openmfa.store.changes import AuditEvent
from openmfa.store.database import Store


def test_each_sign_in_says_its_channel(store: Store) -> None:
    keys = ApiKeys(store)
    keys.create("portal1", "portal")
    keys.create("grafana-proxy", "adapter")
    keys.create("phones", "mobile")
    said = [
        ("portal.sign_in", "portal1", "ok"),
        ("authenticate", "radius:vpn", "rejected"),
        ("authenticate", "grafana-proxy", "accepted"),
        ("push.answer", "phones", "accepted"),
        ("authenticate", "cli", "accepted"),
        ("authenticate", "gone-key", "accepted"),
        ("method.add", "portal1", "ok"),  # not a sign-in
    ]
    for action, client, result in said:
        audit.record(store, AuditEvent(action, result, user_name="ann", client=client))
    audit.record(store, AuditEvent("authenticate", "accepted", user_name="bob", client="cli"))
    found = audit.sign_ins(store, "ann", 50)
    assert [(e.client, e.channel) for e in found] == [
        ("gone-key", ""),
        ("cli", "cli"),
        ("phones", "phone"),
        ("grafana-proxy", "application"),
        ("radius:vpn", "radius"),
        ("portal1", "portal"),
    ]
    assert [e.channel for e in audit.sign_ins(store, "ann", 2)] == ["", "cli"]
    assert audit.sign_ins(store, "nobody", 5) == []
