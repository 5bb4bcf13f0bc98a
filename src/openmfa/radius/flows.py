"""What an Access-Request means for the RADIUS client that sent it.

Flows (chosen per client by ``--primary``):
- ``none``: the gateway checked the password already; User-Password carries the code.
- ``local`` / ``ldap`` / ``radius``: User-Password is the password. Checked against the node's
  argon2 passwords, the directory, or an upstream RADIUS server; then an Access-Challenge (State +
  Reply-Message) asks for the code, and the follow-up request with that State carries it.
- ``combined`` (per client, with a primary): ``password`` + ``code`` in one User-Password.

Invariant owned here: a State is single-use, bound to the user and the RADIUS client it was
issued to, and expires after ``[radius] challenge_seconds``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..core.verification import Decision, Reason
from ..errors import OpenMfaError, PrimaryUnavailable
from ..node import audit
from ..node.accounts import Accounts
from ..node.authenticator import Attempt
from ..node.commit_queue import CommitQueue, Job, Result
from ..node.radius_clients import RadiusClient
from ..store.changes import AuditEvent
from ..store.database import Store
from . import packet as p
from .primary import PrimaryCheck

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


class ChallengeStates:
    MAX = 100_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._open: dict[bytes, tuple[str, str, float]] = {}
        self._lock = threading.Lock()  # issued on the event loop, taken on the commit thread

    def issue(self, user: str, client: str, now: float) -> bytes:
        state = b"omfa" + secrets.token_bytes(16)
        with self._lock:
            if len(self._open) >= self.MAX:
                self._open = {k: v for k, v in self._open.items() if v[2] > now}
            self._open[state] = (user, client, now + self.seconds)
        return state

    def take(self, state: bytes, user: str, client: str, now: float) -> bool:
        with self._lock:
            entry = self._open.pop(state, None)
        return entry is not None and entry[0] == user and entry[1] == client and now < entry[2]

    def open_count(self, now: float) -> int:
        """Challenges issued and not yet answered or expired (sign-ins in progress)."""
        with self._lock:
            return sum(1 for v in self._open.values() if v[2] > now)


class AccessFlows:
    def __init__(
        self, store: Store, config: Config, queue: CommitQueue, primaries: dict[str, PrimaryCheck]
    ) -> None:
        self.store = store
        self.queue = queue
        self.primaries = primaries
        r = config.values["radius"]
        self.prompt = r["challenge_prompt"].encode()
        self.states = ChallengeStates(r["challenge_seconds"])
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accounts = Accounts(store, config)

    def handle(self, client: RadiusClient, pkt: p.Packet, respond: Respond) -> Job | None:
        """Runs on the commit thread. Returns the attempt to decide in the current batch, or
        None when the request was answered already or went to the event loop (a first factor
        to check first); ``respond`` is always called on the commit thread."""
        name = pkt.get(p.USER_NAME)
        hidden = pkt.get(p.USER_PASSWORD)
        if not name or hidden is None:
            respond(reject("User-Name and User-Password (PAP) are required"))
            return None
        try:
            user = name.decode()
            password = p.reveal_password(hidden, client.secret, pkt.authenticator).decode()
        except (p.MalformedPacket, UnicodeDecodeError):
            respond(reject())
            return None
        state = pkt.get(p.STATE)
        if state is not None:
            if not self.states.take(state, user, client.name, time.time()):
                respond(reject("The sign-in expired or was already completed; start again"))
                return None
            return self._job(client, user, password, respond)
        if client.primary == "none":
            return self._job(client, user, password, respond)
        assert self.loop is not None, "start() first"
        self.loop.call_soon_threadsafe(self._start_primary, client, user, password, respond)
        return None

    def _job(self, client: RadiusClient, user: str, code: str, respond: Respond) -> Job:
        attempt = Attempt(
            user, code, client="radius:" + client.name, request_id=f"radius-{next(self._ids)}"
        )
        return attempt, lambda result: respond(_reply(result)), True

    def _start_primary(
        self, client: RadiusClient, user: str, password: str, respond: Respond
    ) -> None:
        """On the event loop: check the first factor; the reply goes back to the commit thread."""

        def answer(reply: Reply) -> None:
            self.queue.call(lambda: respond(reply))

        def verify(code: str) -> None:
            attempt, callback, _ = self._job(client, user, code, respond)
            self.queue.submit_callback(attempt, callback)

        task = asyncio.get_running_loop().create_task(
            self._primary_first(client, user, password, answer, verify)
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
    ) -> None:
        check = self.primaries[client.primary]
        try:
            if client.combined:
                for n in await asyncio.to_thread(self._code_lengths, user):
                    secret, code = password[:-n], password[-n:]
                    if secret and code.isdigit():
                        if await self._primary(check, client, user, secret):
                            verify(code)
                            return
                        break
                respond(reject())
                return
            if not await self._primary(check, client, user, password):
                respond(reject())
                return
        except PrimaryUnavailable as exc:
            log.error(
                "first factor for RADIUS client %s could not be checked: %s", client.name, exc
            )
            respond(reject("The sign-in service is unavailable; try again later"))
            return
        state = self.states.issue(user, client.name, time.time())
        respond(Reply(p.ACCESS_CHALLENGE, [(p.STATE, state), (p.REPLY_MESSAGE, self.prompt)]))

    async def _primary(
        self, check: PrimaryCheck, client: RadiusClient, user: str, password: str
    ) -> bool:
        ok = await check.check(user, password)
        await asyncio.to_thread(
            audit.record,
            self.store,
            AuditEvent(
                "primary",
                "accepted" if ok else "rejected",
                user_name=user,
                client=f"radius:{client.name}",
                detail=client.primary,
            ),
        )
        return ok

    def _code_lengths(self, user: str) -> list[int]:
        """Code lengths the user's methods produce, longest first (for password+code)."""
        try:
            methods = self.accounts.list_methods(user)
        except OpenMfaError:
            return [6]
        return sorted({m.digits for m in methods}, reverse=True) or [6]


def _reply(result: Result) -> Reply:
    if isinstance(result, OpenMfaError):
        log.error("RADIUS authentication failed: %s", result.message)
        return reject("The sign-in service is unavailable; try again later")
    d: Decision = result
    if d.accepted:
        return ACCEPTED
    return LOCKED_REPLY if d.reason == Reason.LOCKED else DENIED_REPLY
