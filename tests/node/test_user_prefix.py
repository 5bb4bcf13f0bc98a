"""Users found by the start of their name (the console's search): a range of the name's index,
paged with ``after``; ``%`` and ``_`` in a search are plain characters."""

from __future__ import annotations

from openmfa.config import Config
from openmfa.node.accounts import Accounts
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
