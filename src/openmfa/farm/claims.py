"""Farm-wide single use of a code: a subordinate claims each acceptance at the master.

Invariant owned here: while the master can be reached, a TOTP step, an HOTP counter value or a
backup code is accepted at most once in the whole farm — the master applies every claim as a
conditional update (``last_step < new``), in its own data file, in order. When the master cannot
be reached within ``[farm] claim_timeout_seconds`` the policy decides (``accept_local`` or
``fail_closed``), and the audit record says which happened.
"""

from __future__ import annotations

import logging
import time

import httpx
from sqlalchemy import Connection, update

from ..config import Config
from ..node.authenticator import Claim, ClaimResult
from ..store import tables as t
from ..store.database import Store
from . import membership
from .membership import Membership
from .peers import call

log = logging.getLogger("openmfa.farm")
CLAIM_PATH = "/v1/farm/claim"
CLAIMS_PATH = "/v1/farm/claims"
KINDS = ("totp", "hotp", "backup")


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
                return ClaimResult.USED if resp.json().get("result") == "used" else ClaimResult.OK
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
                # A master on an older release (during a rolling upgrade): one at a time.
                return [self.claim(*c) for c in claims]
            if resp.status_code == 200:
                answers = resp.json()["results"]
                if len(answers) == len(claims):
                    return [ClaimResult.USED if a == "used" else ClaimResult.OK for a in answers]
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


def remote_for(store: Store, config: Config) -> MasterClaims | None:
    """The claims client when this node is a subordinate, else None."""
    m = membership.load(store)
    if m is None or m.role != membership.SUBORDINATE:
        return None
    f = config.values["farm"]
    return MasterClaims(
        m,
        store.node_name,
        float(f["claim_timeout_seconds"]),
        f["when_master_unreachable"] == "fail_closed",
    )


def claim_on_master(store: Store, method_id: str, kind: str, value: int | str) -> bool:
    """Apply one claim to the master's data; False when it was used already."""
    return claims_on_master(store, [(method_id, kind, value)])[0]


def claims_on_master(store: Store, claims: list[Claim]) -> list[bool]:
    """Apply claims in order, in one transaction; each False when it was used already."""
    with store.write() as conn:
        return [_claim(conn, *c) for c in claims]


def _claim(conn: Connection, method_id: str, kind: str, value: int | str) -> bool:
    ms, bc = t.method_state, t.backup_codes
    if kind == "totp":
        stmt = (
            update(ms)
            .where(ms.c.method_id == method_id, ms.c.last_step < int(value))
            .values(last_step=int(value))
        )
    elif kind == "hotp":
        stmt = (
            update(ms)
            .where(ms.c.method_id == method_id, ms.c.counter < int(value))
            .values(counter=int(value))
        )
    else:
        stmt = (
            update(bc)
            .where(
                bc.c.method_id == method_id,
                bc.c.code_hash == bytes.fromhex(str(value)),
                bc.c.used_at.is_(None),
            )
            .values(used_at=time.time())
        )
    return bool(conn.execute(stmt).rowcount == 1)
