"""A push the portal's sign-in collects (``node.portal_sign_in``, ``PushRequests.collect``):
only for a ticket issued before the push was opened, only once, and the session it gives says
when the phone approved (its ``auth_time``), not when the portal came for it."""

from __future__ import annotations

import time

import pytest

from openmfa.config import Config
from openmfa.errors import NotFound
from openmfa.node.portal import SESSION, TICKET
from openmfa.node.portal_sign_in import TICKET_SKEW, SignInSteps
from openmfa.store.database import Store
from tests.node.test_portal_sign_in import run, with_totp
from tests.node.test_push import Phone


def _approved_push(s: SignInSteps, phone: Phone) -> tuple[str, float]:
    """A push the portal opened for frank, approved on his phone: its id and decided time."""
    with s.store.write() as conn:
        d, _ = s.push.open(
            conn, "frank", None, client="portal-key", source="portal", request_id="r1",
            now=time.time(),
        )  # fmt: skip
    assert d.pending is not None
    push_id, number, _ = d.pending
    nonce = s.push.poll(*phone.poll()).requests[0].nonce
    outcome = s.push.answer(*phone.answer(push_id, nonce, "approve", number))
    assert outcome.accepted and outcome.decided_at is not None
    return push_id, outcome.decided_at


def test_an_approved_push_gives_one_session_and_only_to_its_own_sign_in(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "frank")

    async def scenario(s: SignInSteps) -> None:
        phone = Phone()
        code = s.push.issue_activation("frank").code
        phone.device_id = s.push.activate(code, "ES256", phone.public_key()).device_id
        ticket, _ = s.portal.issue(TICKET, "frank", "portal-key", time.time())
        push_id, decided = _approved_push(s, phone)
        # A sign-in begun after the push was opened (the password again, a new ticket):
        later, _ = s.portal.issue(TICKET, "frank", "portal-key", time.time() + TICKET_SKEW + 5)
        with pytest.raises(NotFound, match="not of this sign-in"):
            await s.second(later, "portal-key", "r2", None, push_id=push_id)
        step = await s.second(ticket, "portal-key", "r3", None, push_id=push_id)
        assert step.accepted and step.token
        grant = s.portal.check(step.token, SESSION, "portal-key", time.time())
        assert grant.factor == "swk" and grant.auth_time == decided <= grant.issued_at
        with pytest.raises(NotFound, match="taken already"):  # the same ticket, again
            await s.second(ticket, "portal-key", "r4", None, push_id=push_id)

    run(store, config, scenario)
