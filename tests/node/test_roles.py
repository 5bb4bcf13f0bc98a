"""Operator roles (``node.roles``) on both databases: a role is set, shown and taken away; it is
refused before data format 15 (so is a console key); what each role may do is the table's; an
operator token is decided again on every check (the role now, a lock, a disable, sign out
everywhere). Roles replicate (replay, a user's deletion, a re-bootstrap)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from openmfa.farm import membership
from openmfa.farm.feed import changes_since, make_snapshot, open_snapshot
from openmfa.farm.follower import apply_changes, resync
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import SCOPES, ApiClient, ApiKeys
from openmfa.node.passwords import set_password
from openmfa.node.portal import OPERATOR, SESSION, PortalTokens
from openmfa.node.roles import ROLES, Roles
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

CONSOLE = ApiClient("console1", "console")


def roles_of(store: Store, config: Config) -> tuple[Accounts, Roles, PortalTokens]:
    accounts = Accounts(store, config)
    tokens = PortalTokens(store, config)
    return accounts, Roles(store, accounts, tokens), tokens


def test_the_table_is_least_privilege() -> None:
    assert ROLES["admin"] == SCOPES["admin"] | {"apikeys", "tokens:import"}
    assert not {"apikeys", "tokens:import"} & set().union(*SCOPES.values())  # no key may
    assert ROLES["auditor"] == {"users:read", "methods:read", "audit:read", "farm:read"}
    helpdesk = ROLES["helpdesk"]
    assert {"users:unlock", "bypass", "access-code", "devices:revoke"} <= helpdesk
    assert {"methods:resync", "tokens:assign", "audit:read", "users:read"} <= helpdesk
    assert "farm:read" in helpdesk
    for never in (
        *("users:write", "methods:write", "roles", "authenticate", "push", "devices"),
        *("apikeys", "tokens:import"),
    ):
        assert never not in helpdesk and never not in ROLES["auditor"]
    assert all(r <= ROLES["admin"] for r in ROLES.values())
    # A console host's key: operators' sign-ins, and its own reports to the inventory.
    assert SCOPES["console"] == {"console", "report"}


def test_set_shown_taken_away_and_refused(store: Store, config: Config) -> None:
    accounts, roles, _ = roles_of(store, config)
    accounts.add_user("hana")
    assert accounts.get_user("hana").role == ""
    assert roles.set("hana", "helpdesk").role == "helpdesk"
    assert [u.role for u in accounts.list_users()] == ["helpdesk"]
    assert roles.set("hana", "auditor").role == "auditor"
    assert roles.set("hana", "none").role == ""
    with store.read() as conn:
        assert conn.execute(select(t.user_roles)).all() == []
        details = conn.scalars(
            select(t.audit.c.detail).where(t.audit.c.action == "user.role").order_by(t.audit.c.id)
        ).all()
    assert details == ["helpdesk", "auditor", "none"]
    with pytest.raises(InvalidInput, match="admin, helpdesk, auditor or none"):
        roles.set("hana", "root")
    with pytest.raises(NotFound):
        roles.set("nobody", "admin")


def test_nothing_is_written_before_data_format_15(store: Store, config: Config) -> None:
    accounts, roles, _ = roles_of(store, config)
    accounts.add_user("hana")
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="14"))
    with pytest.raises(Conflict, match=r"Operator roles need data format 15; .* at 14"):
        roles.set("hana", "admin")
    with pytest.raises(Conflict, match="scope console need data format 15"):
        ApiKeys(store).create("console1", "console")
    ApiKeys(store).create("portal1", "portal")  # other scopes as before
    with store.read() as conn:
        assert conn.execute(select(t.user_roles)).all() == []
        assert conn.scalar(select(t.api_keys.c.id).where(t.api_keys.c.scope == "console")) is None


def test_each_check_reads_the_role_now(store: Store, config: Config) -> None:
    accounts, roles, tokens = roles_of(store, config)
    accounts.add_user("hana")
    roles.set("hana", "helpdesk")
    now = time.time()
    token, _ = tokens.issue(OPERATOR, "hana", "console1", now)
    acting = roles.operator(CONSOLE, token, now)
    assert (acting.name, acting.role, acting.operator) == ("console1/hana", "helpdesk", "hana")
    acting.require("users:unlock")
    with pytest.raises(Forbidden, match="'hana' has role 'helpdesk', which may not users:write"):
        acting.require("users:write")
    assert acting.neutral is False  # may read users
    # only a console key; only its own token; only an operator token
    with pytest.raises(Forbidden, match="scope console"):
        roles.operator(ApiClient("ops", "admin"), token, now)
    with pytest.raises(Unauthorized):
        roles.operator(ApiClient("console2", "console"), token, now)
    session, _ = tokens.issue(SESSION, "hana", "console1", now)
    with pytest.raises(Unauthorized):
        roles.operator(CONSOLE, session, now)
    with pytest.raises(Unauthorized):
        roles.operator(CONSOLE, token, now + 10 * 3600)  # expired
    # the role now, not at sign-in
    roles.set("hana", "auditor")
    with pytest.raises(Forbidden, match="role 'auditor'"):
        roles.operator(CONSOLE, token, now).require("users:unlock")
    roles.set("hana", "none")
    with pytest.raises(Forbidden, match="no longer an operator"):
        roles.operator(CONSOLE, token, now)
    roles.set("hana", "admin")
    accounts.update_user("hana", {"enabled": False})
    with pytest.raises(Unauthorized, match="sign in again"):
        roles.operator(CONSOLE, token, now)
    accounts.update_user("hana", {"enabled": True})
    with pytest.raises(Unauthorized, match="sign in again"):  # the disable ended it for good
        roles.operator(CONSOLE, token, time.time())
    token, _ = tokens.issue(OPERATOR, "hana", "console1", time.time())
    roles.operator(CONSOLE, token, time.time()).require("roles")
    set_password(store, accounts, "hana", "a new password by an admin")  # a reset: ended too
    with pytest.raises(Unauthorized, match="sign in again"):
        roles.operator(CONSOLE, token, time.time())
    token, _ = tokens.issue(OPERATOR, "hana", "console1", time.time())
    roles.operator(CONSOLE, token, time.time())
    accounts.end_sessions("hana")
    with pytest.raises(Unauthorized, match="sign in again"):
        roles.operator(CONSOLE, token, time.time())
    accounts.delete_user("hana")
    with pytest.raises(Unauthorized):
        roles.operator(CONSOLE, token, now)


def test_roles_replicate(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        accounts, roles, _ = roles_of(master, config)
        accounts.add_user("hana")
        accounts.add_user("otto")
        roles.set("hana", "helpdesk")
        roles.set("otto", "auditor")
        rows = changes_since(master, 0)
        assert apply_changes(sub, rows) == len(rows)
        sub_accounts = Accounts(sub, config)
        assert [(u.name, u.role) for u in sub_accounts.list_users()] == [
            ("hana", "helpdesk"),
            ("otto", "auditor"),
        ]
        seq = rows[-1]["seq"]
        roles.set("hana", "none")
        accounts.delete_user("otto")
        apply_changes(sub, changes_since(master, seq))
        assert sub_accounts.get_user("hana").role == ""
        with sub.read() as conn:
            assert conn.execute(select(t.user_roles)).all() == []
    finally:
        sub.close()
        master.close()


def test_a_re_bootstrap_brings_the_master_s_roles(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    try:
        accounts, roles, _ = roles_of(master, config)
        accounts.add_user("hana")
        key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
        (tmp_path / "sub").mkdir()
        dd = DataDir(tmp_path / "sub")
        dd.key_file.write_bytes(key_file)
        dd.data_file.write_bytes(data)
        sub = Store.open(dd)
        try:
            m = membership.Membership("f1", membership.SUBORDINATE, 3, "http://m:1", bytes(32), "s")
            with sub.write() as conn:
                membership.save(sub, conn, m)
            roles.set("hana", "admin")
            key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
            resync(sub, key_file, data)
            assert Accounts(sub, config).get_user("hana").role == "admin"
        finally:
            sub.close()
    finally:
        master.close()


def test_directory_groups_give_roles(store: Store) -> None:
    """``[directory] role_groups``: a person in a role's directory group has that role (the
    strongest of two), one set by hand wins, a group set by hand gives none, and leaving the
    group takes it away at the next call."""
    from openmfa.node.groups import Groups, groups_change
    from openmfa.store.changes import ChangeWriter

    config = make_config(
        directory={"role_groups": {"admin": ["MFA-Admins"], "helpdesk": ["helpdesk"]}}
    )
    accounts, roles, tokens = roles_of(store, config)
    for name in ("hana", "ivo", "jan", "kees", "lars"):
        accounts.add_user(name)

    def directory(name: str, added: list[str], removed: tuple[str, ...] = ()) -> None:
        change = groups_change(accounts.user_id(name), "directory", added, list(removed))
        ChangeWriter(store).commit([change])

    directory("hana", ["helpdesk"])
    directory("ivo", ["helpdesk", "mfa-admins"])  # both: the stronger; case does not matter
    directory("jan", ["helpdesk"])
    roles.set("jan", "auditor")  # by hand: wins
    Groups(store, accounts).add("kees", "helpdesk")  # by hand: not the directory's
    directory("lars", ["mfa-admin\u017f", "HELPDESK\u212a"])  # a long s; a Kelvin sign
    assert {u.name: u.role for u in accounts.list_users()} == {
        "hana": "helpdesk",
        "ivo": "admin",
        "jan": "auditor",
        "kees": "",
        "lars": "",
    }
    with pytest.raises(Conflict, match=r"directory group helpdesk, mfa-admins .* user disable ivo"):
        roles.set("ivo", "none")  # what the directory gives is taken away there
    assert accounts.get_user("ivo").role == "admin"
    now = time.time()
    token, _ = tokens.issue(OPERATOR, "hana", "console1", now)
    acting = roles.operator(CONSOLE, token, now)
    assert acting.role == "helpdesk"
    with pytest.raises(Forbidden, match="'ivo' \\(an operator\\)"):
        roles.guard(acting, "ivo")  # an admin by the directory's group: not for the helpdesk
    roles.guard(acting, "kees")  # a group by hand made no operator
    directory("hana", [], ("helpdesk",))  # left the group: no longer an operator
    with pytest.raises(Forbidden, match="no longer an operator"):
        roles.operator(CONSOLE, token, now)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"root": ["x"]}, "'root' is not a role"),
        ({"admin": "mfa-admins"}, "must be a list of group names"),
        ({"admin": [""]}, "must be a list of group names"),
    ],
)
def test_role_groups_are_checked(given: dict[str, object], message: str) -> None:
    from openmfa.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config(directory={"role_groups": given})
