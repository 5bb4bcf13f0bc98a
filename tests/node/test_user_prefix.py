"""Users found by the start of their name, their group and state (the console's search): a
range of the name's index, paged with ``after``; ``%`` and ``_`` in a search are plain
characters."""

from __future__ import annotations

import time

import pytest

from openmfa.config import Config
from openmfa.errors import InvalidInput
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups
from openmfa.node.user_search import UserSearch
from openmfa.store import tables as t
from openmfa.store.database import Store


def test_names_that_start_with_the_prefix_page_by_page(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    for name in ("pia", "piet", "pim", "pi_x", "pixa", "paul", "Pieter", "q"):
        accounts.add_user(name)

    def names(prefix: str, after: str = "", limit: int = 100) -> list[str]:
        return [u.name for u in accounts.list_users(prefix=prefix, after=after, limit=limit)]

    assert names("pi") == ["pi_x", "pia", "piet", "pim", "pixa"]
    assert names("pi", limit=2) == ["pi_x", "pia"]
    assert names("pi", after="pia", limit=2) == ["piet", "pim"]
    assert names("pi_") == ["pi_x"]  # "_" is no wildcard
    assert names("p%") == []
    assert names("Pi") == ["Pieter"]
    assert names("zz") == []
    assert len(names("")) == 8


def test_users_narrowed_by_group_and_state(store: Store, config: Config) -> None:
    """The console's filters: members of one group (by hand or from the directory, its exact
    name), users locked now, disabled, or neither; an unknown state is refused as a sentence."""
    accounts = Accounts(store, config)
    for name in ("ann", "bob", "cas", "dee"):
        accounts.add_user(name)
    groups = Groups(store, accounts)
    groups.add("ann", "vpn")
    groups.add("cas", "vpn")
    groups.add("dee", "VPN")
    accounts.update_user("bob", {"enabled": False})
    with store.write() as conn:
        conn.execute(
            t.user_state.update()
            .where(t.user_state.c.user_id == accounts.user_id("cas"))
            .values(locked_until=time.time() + 600, failures=5)
        )
    search = UserSearch(store, accounts)

    def names(**how: str) -> list[str]:
        return [u.name for u in search.listed(limit=100, **how)]

    assert names(group="vpn") == ["ann", "cas"]  # exact: "VPN" is another group
    assert names(state="locked") == ["cas"]
    assert names(state="disabled") == ["bob"]
    assert names(state="active") == ["ann", "dee"]
    assert names(group="vpn", state="active") == ["ann"]
    assert names(group="nobody") == []
    with pytest.raises(InvalidInput, match="state must be one of locked, disabled, active"):
        names(state="sleeping")


def test_the_sdk_refuses_a_long_group_or_a_wrong_state_with_or_without_an_email(
    store: Store, config: Config
) -> None:
    """schemathesis found ``?group`` of 200 characters accepted beside ``?email`` (the email
    search went first): both refusals come before either search."""
    import httpx

    from openmfa.node.apikeys import ApiKeys
    from tests.sdk.test_app import run_app

    h = {"authorization": "Bearer " + ApiKeys(store).create("ops", "admin")}

    async def scenario(c: httpx.AsyncClient) -> None:
        for params in (
            {"group": "g" * 129},
            {"group": "g" * 129, "email": "a@example.org"},
            {"state": "", "email": "a@example.org"},
        ):
            r = await c.get("/v1/users", params=params, headers=h)
            assert r.status_code == 422, (params, r.text)
        r = await c.get(
            "/v1/users", params={"group": "g" * 128, "email": "a@example.org"}, headers=h
        )
        assert r.status_code == 200 and r.json()["users"] == []

    run_app(store, config, scenario)
