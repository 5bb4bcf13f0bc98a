"""The audit log looked after (data format 16) on both databases: ``[audit] retain_days``
forgets old records at the master and on a subordinate that replays it, audited; a person's
export holds everything and no secret; erasing removes the account and leaves their audit
records under a pseudonym, without origin or free text, on every node; before format 16 both
wait; through the SDK, an admin key may, a helpdesk operator may not."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.errors import Conflict, NotFound
from openmfa.farm.feed import changes_since
from openmfa.farm.follower import apply_changes
from openmfa.node import audit
from openmfa.node.accounts import Accounts, Actor
from openmfa.node.audit import Origin
from openmfa.node.audit_retention import DAY, AuditRetention
from openmfa.node.privacy import Privacy
from openmfa.node.user_search import UserSearch
from openmfa.store import tables as t
from openmfa.store.changes import AuditEvent
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _row(store: Store, user: str, at: float, client: str = "portal1", origin: str = "") -> None:
    sealed = Origin(origin, "Firefox", "Linux").sealed(store.box, user) if origin else ""
    event = AuditEvent("authenticate", "accepted", user_name=user, client=client,
                       detail=f"from {origin}", source_enc=sealed)  # fmt: skip
    with store.write() as conn:
        conn.execute(insert(t.audit).values(event.row(store.node_name, at)))


def _audit(store: Store) -> list[tuple[str, str, str, str, str]]:
    with store.read() as conn:
        rows = conn.execute(select(t.audit).order_by(t.audit.c.id)).all()
    return [(r.action, r.user_name, r.client, r.detail, r.source_enc) for r in rows]


def test_retention_forgets_old_records_and_says_so(store: Store) -> None:
    now = time.time()
    for days in (40, 33, 29, 1):  # the rule counts back from the newest record (1 day old)
        _row(store, "alice", now - days * DAY)
    assert AuditRetention(store, make_config()).run(now) == 0  # 0 days: everything is kept
    retention = AuditRetention(store, make_config(audit={"retain_days": 30}))
    assert retention.run(now) == 2
    rows = _audit(store)
    assert [r[0] for r in rows] == ["authenticate", "authenticate", "audit.prune"]
    assert rows[-1][2] == "retention" and rows[-1][3].startswith("2 records from before ")
    assert retention.run(now) == 0  # nothing older left: nothing written


def test_retention_waits_for_format_16(store: Store) -> None:
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="15"))
    _row(store, "alice", time.time() - 90 * DAY)
    assert AuditRetention(store, make_config(audit={"retain_days": 30})).run() == 0
    assert len(_audit(store)) == 1


def test_export_holds_everything_and_no_secret(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice", email="alice@example.org", phone="+31 20 555 0100")
    accounts.enroll("alice", "totp", secret=SEED, label="Work phone")
    _row(store, "alice", time.time(), origin="192.0.2.7")
    said = Privacy(store, config, accounts).export("alice", Actor(client="ops"))
    assert said.user.email == "alice@example.org" and said.user.phone == "+31 20 555 0100"
    assert [(m.kind, m.label) for m in said.methods] == [("totp", "Work phone")]
    assert said.audit[0].address == "192.0.2.7" and said.audit[0].browser == "Firefox"
    text = msgspec.json.encode(said).decode()
    assert SEED not in text and "secret" not in text.replace("no secret", "")
    exported = audit.query(store, actions=("user.export",))
    assert [(e.user, e.client) for e in exported] == [("alice", "ops")]
    with pytest.raises(NotFound):
        Privacy(store, config, accounts).export("nobody")


def test_erase_keeps_what_happened_under_a_pseudonym(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice", email="alice@example.org")
    accounts.add_user("hana")
    _row(store, "alice", time.time(), origin="192.0.2.7")
    _row(store, "bob", time.time(), client="console1/alice")  # alice as an operator
    _row(store, "hana", time.time(), client="console1/malice")  # another name ending so
    _row(store, "hana", time.time(), client="console1/Alice")  # another person (case counts)
    pseudonym = Privacy(store, config, accounts).erase("alice", Actor(client="ops"))
    assert pseudonym.startswith("erased-")
    with pytest.raises(NotFound):
        accounts.get_user("alice")
    assert UserSearch(store, accounts).by_email("alice@example.org") == []
    rows = _audit(store)
    assert all("alice" not in " ".join(r[1:4]).replace("malice", "") for r in rows), rows
    with store.read() as conn:  # the change record holds no erased name in the clear
        erased = conn.scalars(
            select(t.changes.c.payload).where(t.changes.c.kind == "audit.erase")
        ).all()
    assert len(erased) == 1 and set(erased[0]) == {"name_enc", "pseudonym"}
    assert "alice" not in str(erased[0])
    mine = [r for r in rows if r[1] == pseudonym and r[0] == "authenticate"]
    assert mine == [("authenticate", pseudonym, "portal1", "", "")]
    others = [r[:3] for r in rows if r[0] == "authenticate" and r[1] != pseudonym]
    assert others == [("authenticate", "bob", f"console1/{pseudonym}"),
                      ("authenticate", "hana", "console1/malice"),
                      ("authenticate", "hana", "console1/Alice")]  # fmt: skip
    assert rows[-1][:3] == ("user.erase", pseudonym, "ops")
    with pytest.raises(NotFound, match="no audit record names them"):
        Privacy(store, config, accounts).erase("alice")
    accounts.delete_user("hana")  # deleted the usual way: the records can be erased still
    gone = Privacy(store, config, accounts).erase("hana")
    assert not [r for r in _audit(store) if r[1] == "hana"] and gone != pseudonym


def test_erase_waits_for_format_16(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="15"))
    with pytest.raises(Conflict, match="Erasing a person need data format 16"):
        Privacy(store, config, accounts).erase("alice")
    assert accounts.get_user("alice").name == "alice"


def test_a_subordinate_forgets_and_erases_the_same(tmp_path: Path) -> None:
    config = make_config(audit={"retain_days": 30})
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        accounts = Accounts(master, config)
        accounts.add_user("alice")
        apply_changes(sub, changes_since(master, 0))
        now = time.time()
        for where in (sub, master):  # a subordinate's own rows, relayed to the master
            _row(where, "alice", now - 60 * DAY)
            _row(where, "alice", now, origin="192.0.2.7")
        seq = changes_since(master, 0)[-1]["seq"]
        AuditRetention(master, config).run(now)
        Privacy(master, config, accounts).erase("alice")
        apply_changes(sub, changes_since(master, seq))
        rows = [r for r in _audit(sub) if r[0] == "authenticate"]
        assert len(rows) == 1 and rows[0][1].startswith("erased-") and rows[0][4] == ""
        assert not [r for r in _audit(sub) if "alice" in r[1]]
    finally:
        master.close()
        sub.close()


def test_retention_counts_back_from_the_newest_record_on_the_hour(store: Store) -> None:
    """A clock years ahead of the data forgets nothing the rule keeps; the cut-off is on the
    hour, so a busy log is not pruned (and audited) every minute."""
    now = time.time()
    _row(store, "alice", now - 10 * DAY)
    _row(store, "alice", now - 2 * DAY)
    retention = AuditRetention(store, make_config(audit={"retain_days": 5}))
    assert retention.run(now + 3650 * DAY) == 1  # ten years ahead: as if now
    assert len([r for r in _audit(store) if r[0] == "authenticate"]) == 1
    with store.read() as conn:
        before = conn.scalar(select(t.changes.c.payload).where(t.changes.c.kind == "audit.prune"))
    assert before is not None and before["before"] % 3600 == 0


def test_a_directory_person_is_erased_only_once_the_directory_let_them_go(
    store: Store, config: Config
) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("dana")
    with store.write() as conn:
        conn.execute(t.users.update().where(t.users.c.name == "dana").values(source="corp"))
    with pytest.raises(Conflict, match="directory source 'corp': remove them there first"):
        Privacy(store, config, accounts).erase("dana")
    accounts.update_user("dana", {"enabled": False})  # as the sync does for someone who left
    assert Privacy(store, config, accounts).erase("dana").startswith("erased-")
