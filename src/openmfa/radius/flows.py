"""What an Access-Request means for the RADIUS client that sent it.

Flows (chosen per client by ``--primary``):
- ``none``: the gateway checked the password already; User-Password carries the code.
- ``local`` / ``ldap`` / ``radius``: User-Password is the password. Checked against the node's
  argon2 passwords, the directory, or an upstream RADIUS server; then an Access-Challenge (State +
  Reply-Message) asks for the code, and the follow-up request with that State carries it. The
  password goes through the node's one first-factor rule (``node.first_factor``), as the
  portal's does: a locked user's is not checked, a wrong one counts toward the lock.
- ``combined`` (per client, with a primary): ``password`` + ``code`` in one User-Password
  (``password`` + PIN + ``code`` where a policy rule wants the PIN: split by its length).
- MS-CHAPv2 and EAP (per client, ``--mschap yes`` / ``--eap relay``, with ``--primary
  radius``, or ``ntlm`` for MS-CHAPv2 only): requests without a User-Password that carry them
  go to ``relay_flows``; a PAP request to an ``ntlm`` client is refused.

Push (per client, ``--push challenge|hold|off``): with ``--primary none`` an empty User-Password
(or the word ``push``) asks the user's device to approve, while a code still works; with a
first factor the push starts once the password is checked. ``challenge`` answers at once with
an Access-Challenge showing the number ("Approve on your phone: 42"); its follow-up request (any
password but a code) is answered when the phone answers, or re-challenged while it has not, so
gateways with 5-second timeouts work. ``hold`` keeps the request until the phone answers, within
the client's ``--hold-seconds``. A decline is an Access-Reject at once. Waiting costs no thread:
it is a future on the event loop (``node.push_hub``), woken by the answer.

Invariant owned here: a State is single-use, bound to the user and the RADIUS client it was
issued to (and to the push request it shows), and expires after ``[radius] challenge_seconds``.
The open ones pass to the node's next process at a restart (``carry``), never to another node.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from ..config import Config
from ..contract import PushOutcome
from ..core.verification import PUSH_WORDS, Decision, MethodKind, Reason
from ..errors import OpenMfaError, PrimaryUnavailable
from ..farm.push_relay import HandingOver, MasterPush, PushAsked, leads, wait_outcome
from ..node import pins
from ..node.accounts import Accounts
from ..node.audit import seal_origin
from ..node.authenticator import Attempt
from ..node.commit_queue import CommitQueue, Job, Result
from ..node.first_factor import FirstFactor
from ..node.push import PushService
from ..node.push_hub import PushHub
from ..node.push_sign_in import decide_push, unopened
from ..node.radius_clients import RadiusClient
from ..store.changes import AuditEvent
from ..store.database import Store
from ..store.pin_records import pin_of
from . import packet as p
from .challenges import ChallengeStates
from .primary import PrimaryCheck
from .replies import (
    ACCEPTED,
    DENIED_REPLY,
    NOWHERE,
    UNAVAILABLE,
    Reply,
    Respond,
    Where,
    push_reject,
    reject,
    reply_of,
)

log = logging.getLogger("openmfa.radius")


class AccessFlows:
    def __init__(
        self,
        store: Store,
        config: Config,
        queue: CommitQueue,
        primaries: dict[str, PrimaryCheck],
        push: PushService,
        hub: PushHub,
        remote: MasterPush,
    ) -> None:
        """``push`` and ``hub``: where push outcomes are read and waited for; ``remote``: a
        farm subordinate's way to the master's push requests."""
        self.store = store
        self.queue = queue
        self.primaries = primaries
        r = config.values["radius"]
        self.prompt = r["challenge_prompt"].encode()
        self.states = ChallengeStates(r["challenge_seconds"])
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(4)
        """Request ids are this run's (a restarted node, or another node, counts from 1 too)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accounts = Accounts(store, config)
        self.first = FirstFactor(store, queue)
        """Every first factor's rule: the lock checked first, a wrong password counted."""
        self.push = push
        self.hub = hub
        self.holding = 0
        """Requests held for a push answer right now (a drain waits for them)."""
        self.held: dict[str, tuple[asyncio.Task[None], Respond]] = {}
        """The holds (``--push hold``) waiting now, by push request: a stop ends the relayed
        ones at once (``relay_flows``). On the event loop only."""
        self.remote = remote
        self._remote_ids: dict[str, float] = {}
        """Pushes this node opened at the master, until when to remember them."""
        self.carrying = False
        """Draining for a restart in place whose next process takes the open challenges over
        (``carry``): new challenges are opened still; only a push held open is not."""
        from .relay_flows import RelayFlows  # (it imports this module)

        self.relay = RelayFlows(self, config)
        """MS-CHAPv2 and EAP, relayed to the upstream RADIUS server (``relay_flows``)."""

    def handle(
        self, client: RadiusClient, pkt: p.Packet, respond: Respond, nas: str = ""
    ) -> Job | None:
        """Runs on the commit thread. Returns the attempt to decide in the current batch, or
        None when the request was answered already or went to the event loop (a first factor
        to check first); ``respond`` is always called on the commit thread. ``nas``: the
        sender's address (policy rules' networks match it, or the Calling-Station-Id)."""
        name = pkt.get(p.USER_NAME)
        hidden = pkt.get(p.USER_PASSWORD)
        if hidden is None and self.relay.wants(pkt):
            self.relay.handle(client, pkt, respond, nas)
            return None
        no_password = hidden is None and client.push != "off" and pkt.get(p.CHAP_PASSWORD) is None
        if not name or (hidden is None and not no_password):
            respond(reject("User-Name and User-Password (PAP) are required"))
            return None
        try:
            user = name.decode()
            password = (
                ""  # no User-Password at all: an empty one (a push, for a push client)
                if hidden is None
                else p.reveal_password(hidden, client.secret, pkt.authenticator).decode()
            )
        except (p.MalformedPacket, UnicodeDecodeError):
            respond(reject())
            return None
        station = pkt.get(p.CALLING_STATION_ID)
        where = (nas, station.decode("utf-8", "replace") if station else "", p.origin_of(pkt))
        state = pkt.get(p.STATE)
        if state is not None:
            push_id = self.states.take(state, user, client.name, time.time())
            if push_id is None:
                respond(reject("The sign-in expired or was already completed; start again"))
                return None
            if push_id and password.strip().lower() in PUSH_WORDS | {"ok", "yes"}:
                self._on_loop(self._follow_push, client, user, push_id, respond, where)
                return None
            return self._job(client, user, password, respond, where)
        if client.primary == "none":
            return self._job(client, user, password, respond, where)
        if client.primary not in self.primaries:  # ntlm: MS-CHAPv2 only
            only = "a PAP request, but --primary %s checks MS-CHAPv2 only"
            self.relay.say(client, "pap", only, client.primary)
            respond(DENIED_REPLY)
            return None
        assert self.loop is not None, "start() first"
        self.loop.call_soon_threadsafe(self._start_primary, client, user, password, respond, where)
        return None

    def one_round(self, client: RadiusClient, pkt: p.Packet) -> bool:
        """Whether a new request is decided in one round, with no challenge and no push held
        open: password and code in one field, or a code alone. A draining node still answers
        those (its socket outlives its restart: ``handoff``); the others would leave a sign-in
        open here, so they go unanswered and the gateway asks its next server."""
        if client.combined:
            return True  # a password and a code, or a reject
        if client.primary != "none":
            return False  # the password first, then a challenge or a push
        hidden = pkt.get(p.USER_PASSWORD)
        if hidden is None:
            return client.push == "off"  # rejected at once, or a push
        try:
            code = p.reveal_password(hidden, client.secret, pkt.authenticator).decode()
        except (p.MalformedPacket, UnicodeDecodeError):
            return True  # rejected at once
        return client.push == "off" or code.strip().lower() not in PUSH_WORDS

    def answered_while_draining(self, client: RadiusClient, pkt: p.Packet) -> bool:
        """A new request, on a draining node: answered when what it starts outlives this
        process (decided in one round, or a challenge the next process takes over); a push
        held open (``--push hold``) would not. Neither a new EAP conversation (no State) nor
        MS-CHAPv2 is: each ends in a push held here (``relay_flows``)."""
        relayed = self.relay.answered_while_draining(client, pkt)
        if relayed is not None:
            return relayed
        if self.carrying and client.push != "hold":
            return True
        return self.one_round(client, pkt)

    def open_here(self, now: float) -> int:
        """Sign-ins a stop would cut: pushes held open, and the open challenges unless the
        next process takes them over."""
        return self.holding + (0 if self.carrying else self.states.open_count(now))

    async def settle(self, seconds: float) -> int:
        """Wait (bounded) for the answers being worked on (a first factor being checked, a
        push follow-up); how many are still unanswered after ``seconds``. Call once nothing
        reads the socket any more: the relayed requests held for a push are answered at once
        with their refusal, and their pushes closed (``RelayFlows.end_rounds``), so those
        answers are among the ones the next process takes over (``carry``)."""
        deadline = time.monotonic() + seconds
        while True:
            self.relay.end_rounds()  # (again each step: a round may reach its hold meanwhile)
            pending = {t for t in self._tasks if not t.done()}
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return len(pending)
            await asyncio.wait(pending, timeout=min(left, 0.2), return_when=asyncio.FIRST_COMPLETED)

    def remote_pushes(self) -> dict[str, float]:
        """The pushes this node opened at the master, and until when (wall clock)."""
        wall, mono = time.time(), time.monotonic()
        return {k: wall + v - mono for k, v in self._remote_ids.items() if v > mono}

    def restore_remote_pushes(self, pushes: dict[str, float]) -> None:
        wall, mono = time.time(), time.monotonic()
        for k, until in pushes.items():
            if until > wall:
                self._remote_ids[k] = mono + until - wall

    def _job(
        self, client: RadiusClient, user: str, code: str, respond: Respond, where: Where = NOWHERE
    ) -> Job:
        attempt = Attempt(
            user,
            code,
            client="radius:" + client.name,
            request_id=f"radius-{self._run}-{next(self._ids)}",
            push=client.push != "off",
            numbered=client.push != "hold",
            channel="radius",
            channel_client=client.name,
            network=where[0],
            station=where[1],
            source=where[2],
        )
        return attempt, lambda result: self._decided(client, attempt, result, respond), True

    def _decided(self, client: RadiusClient, a: Attempt, result: Result, respond: Respond) -> None:
        """On the commit thread: answer a decision, wait for a push, or check a PIN first."""
        if isinstance(result, Decision) and result.reason is Reason.PIN_NEEDED:
            self._on_loop(self._pin_checked, client, a, respond)
            return
        if isinstance(result, Decision) and result.reason is Reason.PENDING:
            if result.pending is None:  # a farm subordinate: the push is opened at the master
                self._on_loop(self._open_at_master, client, a, result.method_id, respond)
                return
            push_id, number, _ = result.pending
            self._pushed(client, a, push_id, number, respond)
            return
        respond(reply_of(result))

    async def _pin_checked(self, client: RadiusClient, a: Attempt, respond: Respond) -> None:
        try:
            checked = await pins.checked(self.store, a)
        except OpenMfaError as exc:
            log.error("RADIUS client %s: a PIN could not be checked: %s", client.name, exc)
            self.queue.call(lambda: respond(UNAVAILABLE))
            return
        self.queue.submit_callback(
            checked, lambda result: self._decided(client, checked, result, respond)
        )

    def _pushed(
        self, client: RadiusClient, a: Attempt, push_id: str, number: str, respond: Respond
    ) -> None:
        if client.push == "hold":
            self._on_loop(self._hold, client, push_id, respond, a)
        else:
            respond(self._push_challenge(client, a.user, push_id, number))

    async def _open_at_master(
        self, client: RadiusClient, a: Attempt, method_id: str | None, respond: Respond
    ) -> None:
        assert self.remote is not None
        asked = PushAsked(
            user=a.user,
            method_id=method_id,
            client=a.client,
            source=a.source,
            request_id=a.request_id,
            numbered=a.numbered,
        )
        try:
            opened = await self._open_remote(asked)
        except OpenMfaError as exc:
            if await asyncio.to_thread(self.push.is_master):
                # This node was made the master a moment ago: the one post-promotion retry
                # (node.push_sign_in) decides again until its authenticator opens the push here.
                result = await decide_push(self.queue, a, self.push)
                if not unopened(result):
                    self.queue.call(lambda: self._decided(client, a, result, respond))
                    return
            log.error("could not open a push at the master: %s", exc.message)
            self.queue.call(lambda: respond(push_reject(None)))
            return
        if opened.reason != Reason.PENDING:
            refused = reply_of(Decision(False, Reason(opened.reason)))
            self.queue.call(lambda: respond(refused))
            return
        self._remote_ids[opened.id] = time.monotonic() + 130
        self.queue.call(lambda: self._pushed(client, a, opened.id, opened.number, respond))

    async def _open_remote(self, asked: PushAsked) -> Any:
        """Open at the master; while it hands its role over (a second or so), ask again."""
        assert self.remote is not None
        deadline = time.monotonic() + 10
        while True:
            try:
                return await self.remote.open(asked)
            except HandingOver:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def _push_challenge(
        self, client: RadiusClient, user: str, push_id: str, number: str, still: bool = False
    ) -> Reply:
        state = self.states.issue(user, client.name, time.time(), f"{push_id}:{number}")
        text = f"{'Still waiting. ' if still else ''}Approve on your phone: {number}"
        return Reply(p.ACCESS_CHALLENGE, [(p.STATE, state), (p.REPLY_MESSAGE, text.encode())])

    def _on_loop(self, fn: Callable[..., Coroutine[Any, Any, None]], *args: object) -> None:
        """Run ``fn(*args)`` as a task on the event loop (from the commit thread)."""
        assert self.loop is not None, "start() first"

        self.loop.call_soon_threadsafe(lambda: self._spawn(fn(*args)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """On the event loop: run ``work`` as a task a stop waits for (``settle``)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outcome(self, push_id: str, seconds: float) -> PushOutcome:
        """Wait (no thread) until the push is answered or ``seconds`` pass: on this node, or
        at the farm's master for a push opened there. A push this node opened as the master
        moves with the role at a handover: then it is asked of the new master."""
        assert self.push is not None and self.hub is not None
        deadline = time.monotonic() + seconds
        while True:
            left = max(0.0, deadline - time.monotonic())
            store = self.push.store
            if push_id in self._remote_ids and await asyncio.to_thread(leads, store):
                del self._remote_ids[push_id]  # this node became the master: it has it now
            if push_id in self._remote_ids:
                assert self.remote is not None
                now = time.monotonic()
                self._remote_ids = {k: v for k, v in self._remote_ids.items() if v > now}
                self._remote_ids[push_id] = now + 130
                try:
                    outcome = await self.remote.outcome(push_id, left)
                except HandingOver:
                    if deadline - time.monotonic() <= 0.5:
                        raise
                    await asyncio.sleep(0.3)
                    continue
            else:
                outcome = await wait_outcome(self.push, self.hub, store, push_id, left)
                moved = outcome.status == "pending" and self.remote is not None
                if moved and not await asyncio.to_thread(leads, store):
                    self._remote_ids[push_id] = time.monotonic() + 130
            if outcome.status != "pending" or deadline - time.monotonic() <= 0:
                return outcome
            if deadline - time.monotonic() > 0.5:
                await asyncio.sleep(0.2)  # back early (the role moved): not a busy loop

    async def _hold(self, client: RadiusClient, push_id: str, respond: Respond, a: Attempt) -> None:
        """``--push hold``: answer the request itself when the phone answers."""
        self.holding += 1
        task = asyncio.current_task()
        if task is not None:
            self.held[push_id] = (task, respond)
        try:
            outcome = await self._outcome(push_id, client.hold_seconds)
        except Exception:
            log.exception("could not wait for push %s", push_id)
            outcome = None
        finally:
            self.holding -= 1
            if task is not None and self.held.get(push_id, (None,))[0] is task:
                del self.held[push_id]
        reply = ACCEPTED if outcome is not None and outcome.accepted else push_reject(outcome)
        if reply is ACCEPTED:
            await self._approved(a)
        self.queue.call(lambda: respond(reply))

    async def _follow_push(
        self, client: RadiusClient, user: str, shown: str, respond: Respond, where: Where
    ) -> None:
        """The follow-up of a push challenge: Accept once approved; while the phone has not
        answered, a new challenge (within the gateway's patience)."""
        push_id, _, number = shown.partition(":")
        self.holding += 1
        try:
            outcome = await self._outcome(push_id, min(client.hold_seconds, FOLLOW_UP_SECONDS))
        except Exception:
            log.exception("could not read push %s", push_id)
            outcome = None
        finally:
            self.holding -= 1
        if outcome is not None and outcome.status == "pending":
            reply = self._push_challenge(client, user, push_id, number, still=True)
        elif outcome is not None and outcome.accepted:
            reply = ACCEPTED
            await self._approved(self._job(client, user, "", respond, where)[0])
        else:
            reply = push_reject(outcome)
        self.queue.call(lambda: respond(reply))

    async def _approved(self, a: Attempt) -> None:
        """The phone approved ``a``'s push: a full success, so a RADIUS cache window starts
        where the rule caches, as after a typed code (``node.radius_cache``), before the
        Accept; if it cannot, the Accept stands without one."""
        try:
            await self.queue.submit(replace(a, code="", push_approved=True))
        except Exception:
            log.exception("RADIUS: no cache window for an approved push of %s", a.user)

    def _start_primary(
        self, client: RadiusClient, user: str, password: str, respond: Respond, where: Where
    ) -> None:
        """On the event loop: check the first factor; the reply goes back to the commit thread."""

        def answer(reply: Reply) -> None:
            self.queue.call(lambda: respond(reply))

        def verify(code: str) -> None:
            attempt, callback, _ = self._job(client, user, code, respond, where)
            self.queue.submit_callback(attempt, callback)

        async def push_or_challenge() -> bool:
            """After the password: push to the user's device when they have one, unless the
            method they chose to be asked for first is a code (then: a code challenge)."""
            if client.push == "off":
                return False
            if not await asyncio.to_thread(self._pushes_first, user):
                return False
            attempt, decided, _ = self._job(client, user, "push", respond, where)

            def pushed(result: Result) -> None:  # a rule allows no (such) push: ask for a code
                if isinstance(result, Decision) and result.reason in _ASK_A_CODE:
                    state = self.states.issue(user, client.name, time.time())
                    respond(
                        Reply(
                            p.ACCESS_CHALLENGE, [(p.STATE, state), (p.REPLY_MESSAGE, self.prompt)]
                        )
                    )
                else:
                    decided(result)

            self.queue.submit_callback(attempt, pushed)
            return True

        task = asyncio.get_running_loop().create_task(
            self._primary_first(client, user, password, answer, verify, push_or_challenge, where)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _primary_first(
        self,
        client: RadiusClient,
        user: str,
        password: str,
        respond: Respond,
        verify: Callable[[str], None],
        push: Callable[[], Awaitable[bool]],
        where: Where = NOWHERE,
    ) -> None:
        """The first factor through the node's one rule (``node.first_factor``): a locked
        user's password is not checked, a wrong one counts toward the lock; a refusal says
        nothing more than "Verification failed" (locked, unknown or wrong alike)."""
        check = self.primaries[client.primary]
        asked = Attempt(
            user,
            "",
            client="radius:" + client.name,
            request_id=f"radius-{self._run}-{next(self._ids)}",
            push=False,
            channel="radius",
            channel_client=client.name,
            network=where[0],
            station=where[1],
            source=where[2],
        )
        checked = AuditEvent(
            "primary",
            "accepted",
            user_name=user,
            client=asked.client,
            request_id=asked.request_id,
            detail=client.primary,
            source_enc=seal_origin(self.store.box, user, where[2]),
        )
        try:
            if client.combined:
                # Each way the field splits into a password and a code of the user's lengths
                # (longest code first) — for a person with a PIN, first into the password and
                # the PIN (of its length) with the code, which a rule that wants the PIN reads
                # there (``node.pins``); none at all is a wrong first factor too.
                lengths, pin = await asyncio.to_thread(self._code_lengths, user)
                splits = [
                    (password[:-k], password[-k:])
                    for n in lengths
                    for k in ((n + pin, n) if pin else (n,))
                    if password[:-k] and password[-k:].isdigit()
                ]
                candidates = [secret for secret, _ in splits]
                d, right = await self.first.check_any(check, asked, candidates, checked)
                if d.accepted and d.reason is Reason.SKIPPED:
                    respond(ACCEPTED)  # a policy rule: the password alone (audited there)
                elif d.accepted:
                    verify(splits[right][1])
                else:
                    respond(reject())
                return
            first = await self.first.check(check, asked, password, checked)
            if not first.accepted:
                respond(reject())
                return
            if first.reason is Reason.SKIPPED:
                respond(ACCEPTED)  # a policy rule: the password alone (audited there)
                return
        except PrimaryUnavailable as exc:
            log.error(
                "first factor for RADIUS client %s could not be checked: %s", client.name, exc
            )
            respond(reject("The sign-in service is unavailable; try again later"))
            return
        except OpenMfaError as exc:
            log.error("RADIUS first factor for client %s failed: %s", client.name, exc.message)
            respond(reject("The sign-in service is unavailable; try again later"))
            return
        if await push():
            return
        respond(self._code_challenge(client, user))

    def _code_challenge(self, client: RadiusClient, user: str) -> Reply:
        state = self.states.issue(user, client.name, time.time())
        return Reply(p.ACCESS_CHALLENGE, [(p.STATE, state), (p.REPLY_MESSAGE, self.prompt)])

    def _pushes_first(self, user: str) -> bool:
        """The user has a device, and their default method (if chosen) is not a code app."""
        try:
            kinds = {m.kind for m in self.accounts.list_methods(user)}
            chosen = self.accounts.default_kind(user)
        except OpenMfaError:
            return False
        return MethodKind.PUSH in kinds and chosen not in (MethodKind.TOTP, MethodKind.HOTP)

    def _code_lengths(self, user: str) -> tuple[list[int], int]:
        """Code lengths the user's methods produce, longest first, and their PIN's length (0:
        none), for password+code and password+PIN+code."""
        with self.store.read() as conn:
            pin = pin_of(conn, user)
        try:
            methods = self.accounts.list_methods(user)
        except OpenMfaError:
            return [6], 0
        return sorted({m.digits for m in methods}, reverse=True) or [6], pin[1] if pin else 0


_ASK_A_CODE = frozenset({Reason.METHOD_NOT_ALLOWED, Reason.PIN_NEEDED})
"""After the password, a push the rule refuses or wants a PIN for: a code challenge instead."""

FOLLOW_UP_SECONDS = 3.0
"""How long a push challenge's follow-up waits before it is challenged again (below the 5 s
many gateways give a server)."""
