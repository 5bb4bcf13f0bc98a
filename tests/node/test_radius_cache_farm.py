"""RADIUS caching on a farm subordinate with its own data file (``node.radius_cache``): the
master keeps the cache. A full success is sent to it only after the subordinate's commit
(``cache-keep``), a hit is claimed there after the password (``cache-take``), so M holds
farm-wide; before the password the subordinate can only say a hit *may* be there; a farm not yet
at ``formats.RADIUS_CACHE_FORMAT`` claims nothing and does not cache."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import update

from openmfa.config import Config
from openmfa.core.verification import Decision, Reason
from openmfa.farm.claim_round import ClaimRound
from openmfa.farm.claims import claims_on_master
from openmfa.node.authenticator import Authenticator
from openmfa.node.master_claims import Claim, ClaimResult
from openmfa.node.radius_cache import KEEP, TAKE
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

from .test_policy_enforce import POLICY, setup
from .test_radius_cache import CACHE, VPN, cached, full, sign_in


class Master:
    """The farm's master: its own data file, where the cache's claims are applied as the
    master's route applies them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.fail_closed = False
        self.rounds: list[list[Claim]] = []

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult:
        return self.claim_many([(method_id, kind, value)])[0]

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """The cache's claims applied to the master's data file; a code's granted (its method
        has another id in this test's two files: tests/farm show codes claimed)."""
        self.rounds.append(list(claims))
        cache = [c for c in claims if c[1] in (TAKE, KEEP)]
        done = iter(claims_on_master(self.store, POLICY.lockout, cache))
        return [ClaimResult(next(done)) if c in cache else ClaimResult.OK for c in claims]

    def close(self) -> None:
        pass


def kinds(master: Master) -> list[list[str]]:
    return [[c[1] for c in r] for r in master.rounds]


def test_the_master_keeps_the_cache_of_a_subordinate(
    store: Store, config: Config, tmp_path: Path
) -> None:
    master_store = Store.create(DataDir(tmp_path / "master"), make_config())
    try:
        setup(master_store, make_config(), CACHE)  # the same person (id 1) and rule there
        setup(store, config, CACHE)
        master = Master(master_store)
        sub = Authenticator(store, POLICY, round=ClaimRound(master))
        now = time.time()
        # Before the password a subordinate cannot look: it may be skipped; after the password
        # the master says there is nothing (no success yet): the second factor is asked.
        assert not cached(sign_in(sub, now))
        assert kinds(master) == [[TAKE]]
        # A full success: the code claimed first, the window started at the master only after
        # the subordinate committed the acceptance.
        assert full(sub, now + 30).accepted
        assert kinds(master)[1:] == [["totp"], [KEEP]]
        assert cached(sign_in(sub, now + 60))
        assert cached(sign_in(sub, now + 90))
        assert not cached(sign_in(sub, now + 120))  # M = 2, counted at the master
        with master_store.read() as conn:
            (uses,) = conn.execute(t.radius_cache.select().with_only_columns(
                t.radius_cache.c.uses)).one()  # fmt: skip
        assert uses == 2
    finally:
        master_store.close()


def test_a_farm_before_the_format_claims_nothing_and_does_not_cache(
    store: Store, config: Config, tmp_path: Path
) -> None:
    master_store = Store.create(DataDir(tmp_path / "master"), make_config())
    try:
        setup(master_store, make_config(), CACHE)
        setup(store, config, CACHE)
        with store.write() as conn:  # the farm is not yet at RADIUS_CACHE_FORMAT
            conn.execute(update(t.meta).where(t.meta.c.key == "data_format").values(value="12"))
        master = Master(master_store)
        sub = Authenticator(store, POLICY, round=ClaimRound(master))
        now = time.time()
        assert full(sub, now).accepted
        d = sign_in(sub, now + 60)
        assert (d.accepted, d.reason) == (False, Reason.PENDING)
        assert all(TAKE not in r and KEEP not in r for r in kinds(master))
        # No Calling-Station-Id: never asked either.
        assert not cached(sign_in(sub, now + 61, replace(VPN, station="")))
    finally:
        master_store.close()


def test_the_master_answers_a_malformed_cache_claim_used_never_an_error(tmp_path: Path) -> None:
    master_store = Store.create(DataDir(tmp_path / "master"), make_config())
    try:
        setup(master_store, make_config(), CACHE)
        bad = [
            ("1", TAKE, "not json"),
            ("1", TAKE, '{"a": 1}'),
            ("1", TAKE, '["vpn", "st"]'),
            ("1", TAKE, '["vpn", "st", "x", 2, "r"]'),
            ("1", TAKE, '["vpn", "st", 1e999, 2, "r"]'),  # an endless window
            ("x", KEEP, '["vpn", "st", 1]'),
            ("1", KEEP, '["vpn", "", 1]'),  # no station
        ]
        assert claims_on_master(master_store, POLICY.lockout, bad) == ["used"] * len(bad)
        # Two requests of one batch are two claims: two uses, never one counted for both.
        keep = ("1", KEEP, '["vpn", "st", 1]')
        two = [("1", TAKE, f'["vpn", "st", 10, 1, "r{i}"]') for i in (1, 2)]
        assert claims_on_master(master_store, POLICY.lockout, [keep, *two]) == ["ok", "ok", "used"]
    finally:
        master_store.close()


def test_an_approved_push_on_a_subordinate_starts_the_window_at_the_master(
    store: Store, config: Config, tmp_path: Path
) -> None:
    master_store = Store.create(DataDir(tmp_path / "master"), make_config())
    try:
        setup(master_store, make_config(), CACHE)
        setup(store, config, CACHE)
        master = Master(master_store)
        sub = Authenticator(store, POLICY, round=ClaimRound(master))
        now = time.time()
        (d,) = sub.run([replace(VPN, push_approved=True)], now=now)
        assert isinstance(d, Decision) and d.accepted
        assert kinds(master) == [[KEEP]]  # after the subordinate's commit, as a code's
        assert cached(sign_in(sub, now + 60))
    finally:
        master_store.close()
