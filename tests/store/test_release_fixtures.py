"""Every data file a released version made still opens, migrates and works, with nothing lost."""

from __future__ import annotations

import base64
import json
import shutil
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from openmfa.core.hotp import hotp
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.errors import NeedsMigration
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import KeyRing
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.passwords import check_password
from openmfa.node.radius_clients import RadiusClients
from openmfa.node.session_ends import SessionEnds
from openmfa.node.tokens import Tokens
from openmfa.store import formats
from openmfa.store import tables as t
from openmfa.store.database import DATA_FORMAT, READS_FORMATS, DataDir, Store, engine_for, migrate

ROOT = Path(__file__).resolve().parents[2]
RELEASES = tomllib.loads((ROOT / "releases.toml").read_text())["release"]


def _key(b32: str) -> bytes:
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def test_release_history_is_consistent() -> None:
    versions = [r["version"] for r in RELEASES]
    assert versions == sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    newest = RELEASES[-1]
    assert newest["data_format"] <= DATA_FORMAT
    for r in RELEASES:
        assert (ROOT / r["fixture"] / "facts.json").exists()
        assert READS_FORMATS[0] <= r["data_format"] or r["data_format"] < READS_FORMATS[0]


@pytest.mark.parametrize("release", RELEASES, ids=[r["version"] for r in RELEASES])
def test_fixture_opens_migrates_and_nothing_is_lost(
    release: dict[str, object], tmp_path: Path
) -> None:
    src = ROOT / str(release["fixture"])
    facts = json.loads((src / "facts.json").read_text())
    dd = DataDir(tmp_path / "node")
    shutil.copytree(src, dd.root)
    (dd.root / "openmfa.key").chmod(0o600)
    config = dd.config()
    try:
        store = Store.open(dd, config)
    except NeedsMigration:
        engine = engine_for(dd, config)
        migrate(engine)
        engine.dispose()
        store = Store.open(dd, config)
    with store.write() as conn:  # a node on its own moves its rows at once (`openmfa migrate`)
        assert formats.forward_alone(conn) == (release["data_format"], DATA_FORMAT)
    try:
        acc = Accounts(store, config)
        for name, expected in facts["users"].items():
            user = acc.get_user(name)
            for field, value in expected.items():
                assert getattr(user, field) == value, (name, field)
        methods = facts.get("methods", {"alice": ["backup-codes", "hotp", "totp"]})
        for name, kinds in methods.items():
            assert sorted(m.kind for m in acc.list_methods(name)) == kinds, name
        now = time.time()
        auth = Authenticator(store, VerifyPolicy())
        codes = [
            totp(_key(facts["totp_secret"]), now),
            hotp(_key(facts["hotp_secret"]), 0),
            facts["backup_codes"][0],
        ]
        for code in codes:
            (d,) = auth.run([Attempt("alice", code)], now)
            assert isinstance(d, Decision) and d.accepted, code
        (d,) = auth.run([Attempt("bob", "123456")], now)
        assert isinstance(d, Decision) and d.reason == Reason.DISABLED
        assert check_password(store, "alice", facts["password"]["alice"])
        ring = KeyRing()
        with store.read() as conn:
            generation = Store.generation(conn)
            for name, token in facts["api_keys"].items():
                assert ring.check(conn, generation, token, now).name == name
            assert conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "data_format")) == str(
                DATA_FORMAT
            )
            # format 2: contact details are sealed at rest, none left in the plain columns
            rows = conn.execute(select(t.users.c.email, t.users.c.phone, t.users.c.contact_enc))
            assert all(r.email == r.phone == "" and r.contact_enc for r in rows)
        clients = {c.name: c for c in RadiusClients(store).all()}
        for name, expected in facts["radius_clients"].items():
            c = clients[name]
            assert str(c.network) == expected["address"] and c.primary == expected["primary"]
            assert c.secret == expected["secret"].encode()
        _later_formats(store, acc, facts, src, now)
    finally:
        store.close()


def _later_formats(
    store: Store, acc: Accounts, facts: dict[str, Any], src: Path, now: float
) -> None:
    """What a fixture of format 3 or later holds, still there and still working."""
    for name, kind in facts.get("default_method", {}).items():  # format 4
        chosen = acc.get_user(name).default_method
        assert [m.kind for m in acc.list_methods(name) if m.id == chosen] == [kind], name
    with store.read() as conn:  # format 6: the session.end records, kept
        ended = set(conn.scalars(select(t.session_ends.c.user_name)))
        made = float(conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "created_at")))
    assert ended == set(facts.get("sessions_ended", [])) or not facts.get("sessions_ended")
    ends = SessionEnds(store)
    for name in ended:  # a session issued when the data file was made has ended since
        assert ends.ended(name, "", made, now), name
    inventory = {v.serial: v for v in Tokens(store, acc.config, acc).inventory()}  # format 5
    for serial, expected in facts.get("tokens", {}).items():
        assert inventory[serial].kind == expected["kind"]
        assert bool(inventory[serial].user) == expected["assigned"]
    for name, state_file in facts.get("devices", {}).items():  # format 3: the phone's offline code
        phone = json.loads((src / state_file).read_text())
        with store.read() as conn:
            owner = conn.scalar(
                select(t.users.c.name)
                .select_from(t.devices.join(t.users, t.users.c.id == t.devices.c.user_id))
                .where(t.devices.c.method_id == phone["device_id"])
            )
        assert owner == name
        code = totp(_key(phone["totp_secret"]), now + 30)  # the next step: unused so far
        (d,) = Authenticator(store, VerifyPolicy()).run([Attempt(name, code)], now + 30)
        assert isinstance(d, Decision) and d.accepted, name
