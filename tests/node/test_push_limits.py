"""Push limits are the user's, whoever asks (issue 29): ``[mobile] min_gap_seconds`` between
two pushes and ``open_per_user`` open at once count every key and channel together — an admin
key, a RADIUS client, the portal — so no caller, and no set of callers, can push-bomb a phone."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from openmfa.config import Config
from openmfa.core import push as proto
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.push import PushService
from openmfa.store.database import Store


def test_the_gap_and_the_open_count_hold_across_callers(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    push = PushService(store, config, accounts)
    assert (push.open_per_user, push.min_gap) == (3, 2.0)  # the shipped defaults
    code = push.issue_activation("alice").code
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    push.activate(code, "ES256", proto.b64u(spki))
    auth = Authenticator(store, VerifyPolicy(), push=push)

    def ask(client: str, at: float) -> Reason:
        (d,) = auth.run(
            [Attempt("alice", "push", client=client, request_id=f"{client}@{at}")], now=at
        )
        assert isinstance(d, Decision)
        return d.reason

    t = time.time()
    assert ask("sdk-admin", t) == Reason.PENDING
    # Within the gap: refused, whoever asks.
    for client in ("radius:gw", "portal", "another-admin-key"):
        assert ask(client, t + 1) == Reason.PUSH_LIMITED
    assert ask("radius:gw", t + 2.5) == Reason.PENDING
    assert ask("portal", t + 5) == Reason.PENDING
    # Three open (one per caller): the fourth is refused, whoever asks, gap or not.
    for client in ("sdk-admin", "radius:vpn", "portal"):
        assert ask(client, t + 10) == Reason.PUSH_LIMITED
