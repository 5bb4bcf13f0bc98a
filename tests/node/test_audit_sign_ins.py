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


def test_an_origin_is_sealed_and_bound_to_its_person(store: Store) -> None:
    """The address and browser are sealed at rest under the user's name: the row moved to
    another person, or damaged, shows no origin (and the read does not fail)."""
    from sqlalchemy import select, update

    from openmfa.store import tables as t

    sealed = audit.Origin("192.0.2.7", "Firefox", "Android").sealed(store.box, "ann")
    assert "192.0.2.7" not in sealed and audit.Origin().sealed(store.box, "ann") == ""
    audit.record(store, AuditEvent("authenticate", "accepted", user_name="ann", source_enc=sealed))
    audit.record(store, AuditEvent("authenticate", "accepted", user_name="bob", source_enc=sealed))
    audit.record(store, AuditEvent("authenticate", "accepted", user_name="cy", source_enc="!!"))
    (ann,) = audit.sign_ins(store, "ann", 5)
    assert (ann.address, ann.browser, ann.system) == ("192.0.2.7", "Firefox", "Android")
    for other in ("bob", "cy"):
        (e,) = audit.sign_ins(store, other, 5)
        assert (e.address, e.browser, e.system) == ("", "", "")
    with store.write() as conn:
        conn.execute(update(t.audit).where(t.audit.c.user_name == "ann").values(source_enc=""))
        assert conn.scalar(select(t.audit.c.source_enc).where(t.audit.c.user_name == "ann")) == ""
    assert audit.sign_ins(store, "ann", 5)[0].address == ""
