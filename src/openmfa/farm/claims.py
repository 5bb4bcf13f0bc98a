"""Farm-wide single use of a code: a subordinate claims each acceptance at the master.

Invariant owned here: while the master can be reached, a TOTP step, an HOTP counter value or a
backup code is accepted at most once in the whole farm — the master applies every claim as a
conditional update (``node.auth_state.forward``), in its own data file, in order. When the
master cannot be reached within ``[farm] claim_timeout_seconds`` the policy decides
(``accept_local`` or ``fail_closed``), and the audit record says which happened. How a
subordinate's batch asks (never under its write lock) is ``claim_round``.
"""

from __future__ import annotations

import logging
import time

import httpx
from sqlalchemy import Connection, select, update

from ..config import Config
from ..core.lockout import LockoutPolicy, UserState, after_failure
from ..node import radius_cache
from ..node.auth_state import forward
from ..node.master_claims import Claim, ClaimResult
from ..store import tables as t
from ..store.database import Store
from . import membership
from .claim_round import ClaimRound
from .membership import Membership
from .peers import call

log = logging.getLogger("openmfa.farm")
CLAIM_PATH = "/v1/farm/claim"
CLAIMS_PATH = "/v1/farm/claims"
KINDS = ("totp", "hotp", "backup", "failure", radius_cache.TAKE, radius_cache.KEEP)
_ANSWERS = {"used": ClaimResult.USED, "locked": ClaimResult.LOCKED}


class MasterClaims:
    """The subordinate's side; called from the authenticator's thread."""

    def __init__(self, m: Membership, node: str, timeout: float, fail_closed: bool) -> None:
        self.m = m
        self.node = node
        self.fail_closed = fail_closed
        self._client = httpx.Client(timeout=timeout)
        self._warned = 0.0

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult:
        body = {"method_id": method_id, "kind": kind, "value": value}
        try:
            resp = call(
                self.m.key,
                self.node,
                self.m.master_url,
                "POST",
                CLAIM_PATH,
                body=body,
                client=self._client,
            )
            if resp.status_code == 200:
                return _ANSWERS.get(resp.json().get("result"), ClaimResult.OK)
            problem = f"HTTP {resp.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            problem = type(exc).__name__
        self._warn(problem)
        return ClaimResult.UNREACHABLE

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        body = {"claims": [{"method_id": m, "kind": k, "value": v} for m, k, v in claims]}
        try:
            resp = call(
                self.m.key,
                self.node,
                self.m.master_url,
                "POST",
                CLAIMS_PATH,
                body=body,
                client=self._client,
            )
            if resp.status_code == 404 and resp.json().get("code") == "no_such_route":
                # A master on an older release (during a rolling upgrade): one at a time, and
                # failures stay local (it does not count them).
                return [self.claim(*c) if c[1] != "failure" else ClaimResult.OK for c in claims]
            if resp.status_code == 200:
                answers = resp.json()["results"]
                if len(answers) == len(claims):
                    return [_ANSWERS.get(a, ClaimResult.OK) for a in answers]
            problem = f"HTTP {resp.status_code}"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            problem = type(exc).__name__
        self._warn(problem)
        return [ClaimResult.UNREACHABLE] * len(claims)

    def _warn(self, problem: str) -> None:
        if time.monotonic() - self._warned > 10:  # one line per 10 s, not one per attempt
            self._warned = time.monotonic()
            log.warning(
                "could not claim codes at the master %s (%s); %s",
                self.m.master_url,
                problem,
                "refusing codes (fail_closed)" if self.fail_closed else "deciding locally",
            )

    def close(self) -> None:
        self._client.close()


def round_for(store: Store, config: Config) -> ClaimRound | None:
    """The claim round, with its client of the master, when this node is a subordinate;
    else None (it decides alone)."""
    m = membership.load(store)
    if m is None or not m.farm_role.follows:
        return None
    f = config.values["farm"]
    return ClaimRound(
        MasterClaims(
            m,
            store.node_name,
            float(f["claim_timeout_seconds"]),
            f["when_master_unreachable"] == "fail_closed",
        )
    )


def claim_on_master(
    store: Store, lockout: LockoutPolicy, method_id: str, kind: str, value: int | str
) -> str:
    """Apply one claim to the master's data: "ok", "used" or "locked"."""
    return claims_on_master(store, lockout, [(method_id, kind, value)])[0]


def claims_on_master(store: Store, lockout: LockoutPolicy, claims: list[Claim]) -> list[str]:
    """Apply claims in order, in one transaction: for each "ok", "used" or "locked".

    A failure counts toward the user's lockout here, as on the node that saw it; an
    acceptance is refused while the user is locked here, and resets the count."""
    now = time.time()
    with store.write() as conn:
        return [_apply(conn, lockout, now, *c) for c in claims]


def _apply(
    conn: Connection, lockout: LockoutPolicy, now: float, subject: str, kind: str, value: int | str
) -> str:
    us = t.user_state
    if kind in (radius_cache.TAKE, radius_cache.KEEP):  # RADIUS caching, farm-wide
        return radius_cache.on_master(conn, now, subject, kind, str(value))
    if kind == "failure":
        user_id = int(subject)
        row = conn.execute(
            select(us.c.failures, us.c.locked_until, us.c.bypass_until).where(
                us.c.user_id == user_id
            )
        ).first()
        if row is not None:
            after = after_failure(UserState(row[0], row[1], row[2]), lockout, now)
            conn.execute(
                update(us)
                .where(us.c.user_id == user_id)
                .values(failures=after.failures, locked_until=after.locked_until)
            )
        return "ok"
    owner = conn.execute(
        select(us.c.user_id, us.c.locked_until)
        .select_from(us.join(t.methods, t.methods.c.user_id == us.c.user_id))
        .where(t.methods.c.id == subject)
    ).first()
    if owner is not None and owner[1] is not None and owner[1] > now:
        return "locked"
    if not forward(conn, subject, kind, value):
        return "used"
    if owner is not None:
        conn.execute(update(us).where(us.c.user_id == owner[0]).values(failures=0))
    return "ok"
