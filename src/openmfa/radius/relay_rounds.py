"""Relayed requests (MS-CHAPv2, an EAP conversation's last round) held for a push, and how a
stop of the node ends them.

A relayed request held for a push cannot outlive its process: the phone's answer reaches the
process that holds it, and the NAS's retransmission of it, at the next process, would be relayed
to the upstream again — for EAP an upstream whose conversation ended with its Access-Accept, so
it refuses, and the person's push stays on the phone with nobody waiting for it. So once nothing
reads the socket any more (``flows.settle``), each one is answered at once with its refusal
(MS-CHAPv2: an Access-Reject with MS-CHAP-Error E=691; EAP: an Access-Reject with an
EAP-Failure) through the server's ``respond``, like any answer: it is among the recent answers
the next process takes over (``carry``), so a retransmission gets that same answer there and
the upstream is not asked again. Its push is closed (``PushService.close``: expired, audited
``push.close``; the mobile services are told, so the phone stops showing it). A round whose
push is not yet opened when the stop comes is answered the same way and opens none.

Invariants owned here: a round is answered once (the phone's answer and the stop's race on the
commit thread; the first wins); a stop never refuses a round whose push was approved first (the
push is closed by one conditional update, and only a closed one is refused); no push is opened
for a round the stop answered.

Limits: a push opened at the farm's master by a subordinate is not closed from here (it expires
there after ``[mobile] request_seconds``; approving it does nothing). A held round is not carried
to the next process to be answered there when the phone approves: that process would have to
hold a request it never read, with the Access-Accept made here (its MPPE keys sealed for the NAS)
carried over with it; the person connects again instead, which for EAP the supplicant does by
itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from ..core.verification import Decision, Reason
from ..errors import OpenMfaError
from ..node.commit_queue import Callback, Result
from . import packet as p
from .relay import answer_length
from .replies import Reply, Respond

if TYPE_CHECKING:
    from .flows import AccessFlows

log = logging.getLogger("openmfa.radius")
CLOSED_BECAUSE = "node_stopped"
"""The ``push.close`` audit reason of a push whose request a stopping node answered."""


class Answer:
    """The answer to one relayed request: the server's ``respond`` (commit thread), called once
    — a later call (a failure after the answer, the stop racing the phone) is dropped. An answer
    too long for one packet (``relay.answer_length``: the upstream's attributes and the NAS's
    Proxy-States above 4096 octets) is replaced by ``too_long``, a plain Access-Reject (with an
    EAP-Failure for EAP), and a log line: ``encode_response`` would refuse it, and the request
    would never be answered."""

    def __init__(self, respond: Respond, request: p.Packet, too_long: Reply, client: str) -> None:
        self.respond, self.request, self.too_long, self.client = respond, request, too_long, client
        self.done = False

    def __call__(self, reply: Reply) -> None:
        if self.done:
            return
        self.done = True
        if answer_length(self.request, reply.attributes) > p.MAX_LENGTH:
            log.error(
                "RADIUS client %s: the answer would be %d octets, above RADIUS's 4096 (the "
                "upstream's attributes with the request's Proxy-States); rejected instead. "
                "Narrow the client's --reply-attributes or what the upstream sends",
                self.client,
                answer_length(self.request, reply.attributes),
            )
            reply = self.too_long
        self.respond(reply)


class Round:
    """One relayed request from the upstream's Accept to its answer: the ``respond`` its push
    hold is given (``flows._hold``), called on the commit thread. Approved → ``accept``,
    anything else → ``refused``; only the first call answers."""

    def __init__(self, rounds: HeldRounds, respond: Respond, accept: Reply, refused: Reply) -> None:
        self._rounds = rounds
        self.respond, self.accept, self.refused = respond, accept, refused
        self.answered = False
        """(commit thread)"""
        self.ended = False
        """Answered by the stop, or being (event loop)."""
        self.released = False
        """Its hold is being ended by the stop (event loop)."""

    def __call__(self, reply: Reply) -> None:
        self._rounds.forget(self)
        if self.answered:
            return
        self.answered = True
        self.respond(self.accept if reply.code == p.ACCESS_ACCEPT else self.refused)


class HeldRounds:
    def __init__(self, flows: AccessFlows) -> None:
        self.flows = flows
        self.stopping = False
        """Set by the first ``end``: a round that reaches its push from now on is refused."""
        self._open: set[Round] = set()
        self._lock = threading.Lock()  # added on the event loop, removed on the commit thread

    def start(self, respond: Respond, accept: Reply, refused: Reply) -> Round:
        """A round about to ask for its push (on the event loop)."""
        round_ = Round(self, respond, accept, refused)
        with self._lock:
            self._open.add(round_)
        return round_

    def forget(self, round_: Round) -> None:
        with self._lock:
            self._open.discard(round_)

    def decided(self, round_: Round, callback: Callback) -> Callback:
        """The push decision's callback (commit thread): as ``callback``, unless the stop
        answered the round meanwhile: then no push is held, none opened at the master, and one
        opened here is closed."""

        def then(result: Result) -> None:
            if round_.ended and isinstance(result, Decision) and result.reason is Reason.PENDING:
                if result.pending is not None:
                    self.flows._on_loop(self._close_quietly, result.pending[0])
                return
            callback(result)

        return then

    def end(self) -> None:
        """The node stops (on the event loop; called again until ``flows.settle`` ends, as a
        round may reach its hold meanwhile): each held round's push is closed and the round
        refused; one not held yet is refused at once."""
        self.stopping = True
        held: dict[Round, tuple[str, asyncio.Task[None]]] = {}
        for push_id, (task, respond) in list(self.flows.held.items()):
            if isinstance(respond, Round):
                held[respond] = (push_id, task)
        for round_, (push_id, task) in held.items():
            if not round_.released:
                round_.released = True
                self.flows._spawn(self._end_held(round_, push_id, task))
        with self._lock:
            waiting = [r for r in self._open if r not in held and not r.ended]
        for round_ in waiting:
            round_.ended = True
            self._refuse(round_)

    async def _end_held(self, round_: Round, push_id: str, hold: asyncio.Task[None]) -> None:
        if await self._close(push_id) is False:
            return  # the phone answered first: the hold answers with that
        round_.ended = True
        self._refuse(round_)
        hold.cancel()

    def _refuse(self, round_: Round) -> None:
        self.flows.queue.call(lambda: round_(round_.refused))

    async def _close(self, push_id: str) -> bool | None:
        """Close a push nobody will wait for: True (its waiters and the mobile services told),
        False when it was answered first, None when it is not here to close."""
        if push_id in self.flows._remote_ids:
            log.warning("RADIUS: push %s, opened at the farm's master, is left to expire", push_id)
            return None
        try:
            closed = await asyncio.to_thread(self.flows.push.close, push_id, CLOSED_BECAUSE)
        except OpenMfaError as exc:
            log.warning("RADIUS: push %s is left to expire: %s", push_id, exc.message)
            return None
        if closed:
            self.flows.hub.decided(push_id)
            log.info("RADIUS: push %s closed, its request answered before the stop", push_id)
        return closed

    async def _close_quietly(self, push_id: str) -> None:
        await self._close(push_id)
