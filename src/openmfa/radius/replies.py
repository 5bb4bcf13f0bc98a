"""The replies a RADIUS client gets (``flows``, ``relay_flows``): Accept, the refusals' sentences,
and what a decision or a push's outcome answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..contract import PushOutcome
from ..core.verification import Decision, Reason
from ..errors import OpenMfaError
from ..node.commit_queue import Result
from . import packet as p

log = logging.getLogger("openmfa.radius")


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    attributes: list[tuple[int, bytes]]


Respond = Callable[[Reply], None]

DENIED = "Verification failed"
LOCKED = "Too many failed attempts; try again later"


def reject(message: str = DENIED) -> Reply:
    return Reply(p.ACCESS_REJECT, [(p.REPLY_MESSAGE, message.encode())])


ACCEPTED, DENIED_REPLY, LOCKED_REPLY = Reply(p.ACCESS_ACCEPT, []), reject(), reject(LOCKED)
PUSH_REFUSED = reject("No push can be sent now; enter the code from your app instead")
NOT_ALLOWED = reject("That method is not allowed for this sign-in; use another of your methods")
UNAVAILABLE = reject("The sign-in service is unavailable; try again later")
NO_PIN = reject("This sign-in needs a PIN and you have none; ask your administrator to set one")
Where = tuple[str, str, str]
"""(the NAS's address, the Calling-Station-Id): for policy rules; and where the person is
(``packet.origin_of``: the Calling-Station-Id, else the NAS-IP-Address), sealed with the audit
row."""
NOWHERE: Where = ("", "", "")


def push_reject(outcome: PushOutcome | None) -> Reply:
    if outcome is None:
        return reject("The sign-in service is unavailable; try again later")
    if outcome.status == "expired" or outcome.status == "pending":
        return reject("The phone did not answer in time; start again")
    return reject("The sign-in was declined on the phone")


def reply_of(result: Result) -> Reply:
    if isinstance(result, OpenMfaError):
        log.error("RADIUS authentication failed: %s", result.message)
        return reject("The sign-in service is unavailable; try again later")
    d: Decision = result
    if d.accepted:
        return ACCEPTED
    if d.reason in (Reason.PUSH_LIMITED, Reason.PUSH_BLOCKED):
        return PUSH_REFUSED
    if d.reason is Reason.METHOD_NOT_ALLOWED:
        return NOT_ALLOWED
    if d.reason is Reason.PIN_NOT_SET:
        return NO_PIN
    return LOCKED_REPLY if d.reason == Reason.LOCKED else DENIED_REPLY
