"""RADIUS clients' MS-CHAPv2 and EAP options (``node.radius_clients``): stored, replicated,
refused with a plain reason where they cannot work, and (schema 0009) taken from the change
records by a node that applied them while it ran a release that did not know them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.errors import Conflict, InvalidInput
from openmfa.node.radius_clients import REPLY_ATTRIBUTES_DEFAULT, RadiusClients
from openmfa.store import tables as t
from openmfa.store.changes import Change, apply
from openmfa.store.database import Store, _alembic_config, engine_for

SECRET = "a-long-shared-secret"


def test_the_options_are_stored_and_read_back(store: Store) -> None:
    clients = RadiusClients(store)
    clients.add("vpn", "192.0.2.1", SECRET, primary="radius", push="hold", mschap=True,
                reply_attributes="Class,Filter-Id,Vendor-Specific:12356")  # fmt: skip
    clients.add("wifi", "192.0.2.0/28", SECRET, primary="radius", eap="relay")
    clients.add("pam", "192.0.2.20", SECRET)
    clients.add("ad", "192.0.2.30", SECRET, primary="ntlm", mschap=True)
    ad, pam, vpn, wifi = clients.all()
    assert ad.primary == "ntlm" and ad.mschap
    assert vpn.mschap and vpn.eap == "off" and vpn.push == "hold"
    assert vpn.reply_attributes == ("Class", "Filter-Id", "Vendor-Specific:12356")
    assert wifi.eap == "relay" and not wifi.mschap
    assert ",".join(wifi.reply_attributes) == REPLY_ATTRIBUTES_DEFAULT
    assert not pam.mschap and pam.eap == "off"


@pytest.mark.parametrize(
    "options",
    [
        {"primary": "radius", "mschap": True},
        {"primary": "radius", "eap": "relay"},
        {"primary": "ntlm", "mschap": True},
    ],
)
def test_relay_options_wait_for_data_format_8(store: Store, options: dict[str, Any]) -> None:
    """A 0.3.0 node (format 7) would take such a client's MS-CHAPv2 or EAP request for PAP with
    an empty password and count it toward the lock: the option is refused until format 8."""
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="7"))
    clients = RadiusClients(store)
    with pytest.raises(Conflict, match=r"need data format 8; .* at 7.*farm finalize"):
        clients.add("gw", "192.0.2.1", SECRET, **options)
    clients.add("pap", "192.0.2.2", SECRET, primary="radius")  # no relay option: any format
    assert [c.name for c in clients.all()] == ["pap"]
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="8"))
    clients.add("gw", "192.0.2.1", SECRET, **options)
    assert [c.name for c in clients.all()] == ["gw", "pap"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"mschap": True}, "--mschap yes needs --primary radius"),
        ({"mschap": True, "primary": "local"}, "--mschap yes needs --primary radius"),
        ({"mschap": True, "primary": "ldap"}, "--mschap yes needs --primary radius"),
        ({"eap": "relay", "primary": "ldap"}, "--eap relay needs --primary radius"),
        ({"eap": "relay", "primary": "radius", "combined": True}, "do not go together"),
        ({"mschap": True, "primary": "radius", "push": "off"}, "needs a push"),
        ({"eap": "proxy", "primary": "radius"}, "--eap must be one of off, relay"),
        ({"primary": "ntlm"}, "--primary ntlm checks MS-CHAPv2 only"),
        ({"primary": "ntlm", "mschap": True, "eap": "relay"}, "--eap relay needs --primary radius"),
        ({"primary": "ntlm", "mschap": True, "combined": True}, "needs a primary check"),
        ({"primary": "radius", "reply_attributes": "Class,State"}, "State cannot be in"),
        ({"primary": "radius", "reply_attributes": "Colour"}, "not an attribute this list"),
    ],
)
def test_options_that_cannot_work_are_refused_plainly(
    store: Store, options: dict[str, Any], said: str
) -> None:
    with pytest.raises(InvalidInput, match=said):
        RadiusClients(store).add("gw", "192.0.2.1", SECRET, **options)
    assert RadiusClients(store).all() == []


def test_the_record_replays_with_its_options_and_an_old_record_gets_the_defaults(
    store: Store,
) -> None:
    RadiusClients(store).add("vpn", "192.0.2.1", SECRET, primary="radius", mschap=True,
                             eap="relay", reply_attributes="Class")  # fmt: skip
    with store.write() as conn:
        (payload,) = conn.execute(
            select(t.changes.c.payload).where(t.changes.c.kind == "radius_client.add")
        ).scalars()
        conn.execute(delete(t.radius_clients))
        apply(conn, Change("radius_client.add", dict(payload)))
        replayed = conn.execute(select(t.radius_clients)).one()
        assert (replayed.mschap, replayed.eap, replayed.reply_attributes) == (
            True,
            "relay",
            "Class",
        )
        # a record of a release before these options (0.3.0 writes none of them)
        old = {k: v for k, v in payload.items() if k not in ("mschap", "eap", "reply_attributes")}
        conn.execute(delete(t.radius_clients))
        apply(conn, Change("radius_client.add", old))
        row = conn.execute(select(t.radius_clients)).one()
        assert (row.mschap, row.eap, row.reply_attributes) == (
            False,
            "off",
            REPLY_ATTRIBUTES_DEFAULT,
        )


def test_schema_0009_takes_the_options_from_the_records_an_older_release_applied(
    store: Store, backend: tuple[Any, Config]
) -> None:
    """A subordinate running a release without these columns applied a new master's record by
    its named fields; upgraded, its client has the options the record carried."""
    from alembic import command

    clients = RadiusClients(store)
    clients.add("vpn", "192.0.2.1", SECRET, primary="radius", mschap=True,
                reply_attributes="Class,Filter-Id")  # fmt: skip
    clients.add("vpn2", "192.0.2.2", SECRET, primary="radius", mschap=True)
    dd, config = backend
    store.close()
    engine = engine_for(dd, config)
    try:
        with engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0008")
        with engine.connect() as conn, conn.begin():
            # vpn2 removed and added again by a release without the options: its newest record
            old = {
                "name": "vpn2",
                "address": "192.0.2.2/32",
                "secret_enc": "00",
                "primary": "radius",
                "require_ma": True,
                "combined": False,
                "at": 1.0,
            }
            seq = conn.scalar(select(t.changes.c.seq).order_by(t.changes.c.seq.desc()))
            conn.execute(
                insert(t.changes).values(
                    seq=seq + 1, format=7, at=1.0, kind="radius_client.add", payload=old
                )
            )
        with engine.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "head")
        with engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(select(t.radius_clients))}
    finally:
        engine.dispose()
    assert rows["vpn"].mschap and rows["vpn"].reply_attributes == "Class,Filter-Id"
    assert not rows["vpn2"].mschap and rows["vpn2"].reply_attributes == REPLY_ATTRIBUTES_DEFAULT
