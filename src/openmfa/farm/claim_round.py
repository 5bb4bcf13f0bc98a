"""A farm subordinate's batch of authentications: decided here, each code claimed at the
master in one round trip per batch, never while this node's write lock is held.

1. The batch is decided (``Authenticator.decide``) with what is known. If an acceptance needs
   the master's word, that pass is rolled back (``Collected``): nothing of it is kept.
2. The acceptances' claims — with the failures that pass saw — go to the master in one request
   (``claim_many``), outside any transaction.
3. The batch is decided again with the answers and committed. Should that pass need claims it
   did not need before (its decisions changed with the answers), steps 2-3 repeat, at most
   ``MAX_ROUNDS`` times; then a claim still unanswered counts as "master unreachable" and
   ``[farm] when_master_unreachable`` decides, as for a master that does not answer.
4. Failures the committed pass counted and the master has not heard of are sent after the
   commit: they do not change a decision here (a failure is a failure), only the lockout there.

Grants outlive a failed commit: when the commit fails after the master said "ok" (the commit
queue then decides the batch again, one attempt at a time), asking again would get "used" — by
this very node — and the user's good code would come back as a replay. So a grant is kept until
its batch commits.
"""

from __future__ import annotations

from ..core.verification import Decision
from ..errors import OpenMfaError
from ..node.authenticator import Attempt, Authenticator, Collected
from ..node.master_claims import Claim, ClaimResult, RemoteClaims, Verdicts

MAX_ROUNDS = 3
MAX_GRANTED = 10_000


class ClaimRound:
    def __init__(self, remote: RemoteClaims) -> None:
        self.remote = remote
        self.granted: set[Claim] = set()
        """Claims the master granted this node whose batch has not committed here yet."""

    def run(
        self, auth: Authenticator, attempts: list[Attempt], now: float
    ) -> list[Decision | OpenMfaError]:
        known: dict[Claim, ClaimResult] = {}
        for round_ in range(MAX_ROUNDS + 1):
            verdicts = Verdicts(
                fail_closed=self.remote.fail_closed, known=known, final=round_ == MAX_ROUNDS
            )
            try:
                results = auth.decide(attempts, now, verdicts)
            except Collected:
                known.update(self._ask([*verdicts.wanted, *verdicts.failures], known))
                continue
            used = [c for c in known if c[1] != "failure"]
            self.granted.difference_update(used)  # committed: a later copy is a replay again
            late = [c for c in verdicts.failures if c not in known] + verdicts.after
            if late:
                self.remote.claim_many(late)  # after the commit; the answer changes nothing here
            return results
        raise AssertionError("the last round decides without asking")  # pragma: no cover

    def _ask(
        self, claims: list[Claim], known: dict[Claim, ClaimResult]
    ) -> dict[Claim, ClaimResult]:
        """The master's answers (a grant kept from a failed commit counts as given)."""
        ask = [c for c in dict.fromkeys(claims) if c not in known and c not in self.granted]
        answers = dict(zip(ask, self.remote.claim_many(ask) if ask else [], strict=True))
        if len(self.granted) > MAX_GRANTED:  # only failed commits leave grants behind
            self.granted.clear()
        self.granted.update(
            c for c, a in answers.items() if a is ClaimResult.OK and c[1] != "failure"
        )
        return {c: ClaimResult.OK if c in self.granted else answers[c] for c in claims}

    def close(self) -> None:
        self.remote.close()
