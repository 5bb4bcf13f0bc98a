"""What a farm subordinate claims at the master before an acceptance is final: the claim, the
master's answer, and a batch's pass over what the master said so far (``node.authenticator``
decides with them; ``farm.claim_round`` and ``farm.claims`` ask the master).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class ClaimResult(Enum):
    OK = "ok"
    USED = "used"
    """Another node of the farm used this code (or a later one) first."""
    UNREACHABLE = "unreachable"
    LOCKED = "locked"
    """The user is locked out at the master (failures on any node count there)."""


Claim = tuple[str, str, int | str]
"""(method id, "totp" | "hotp" | "backup", step | counter | code hash)."""


class RemoteClaims(Protocol):
    """The farm's master, where a subordinate claims what an acceptance uses up."""

    fail_closed: bool

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult: ...

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """Claims of one batch in one round trip, applied in order."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Verdicts:
    """A farm subordinate's pass over a batch: what the master answered so far, and what this
    pass still needs from it. The authenticator never asks the master itself (no network call
    while the write lock is held); ``farm.claim_round`` asks between passes and after commit."""

    fail_closed: bool = False
    """``[farm] when_master_unreachable = "fail_closed"``."""
    known: dict[Claim, ClaimResult] = field(default_factory=dict)
    final: bool = False
    """No more rounds: a claim the master has not answered counts as unreachable."""
    wanted: list[Claim] = field(default_factory=list)
    """Acceptances this pass needs the master's word on (then the pass is rolled back)."""
    after: list[Claim] = field(default_factory=list)
    """Claims to send only once this batch committed here (a RADIUS cache's full success:
    never before the acceptance it records is final)."""
    failures: list[Claim] = field(default_factory=list)
    """Failures to count at the master; they do not change a decision, so they are sent after
    the commit (or with the next round's claims)."""


CLAIMED = "claimed at the master"
USED_ELSEWHERE = "the master has seen this code on another node"
LOCKED_AT_MASTER = "locked out at the master (failures on other nodes count too)"
LOCAL_ONLY = "master unreachable: decided on this node's state"
FAILED_CLOSED = "master unreachable: refused (fail closed)"
