"""Where one SDK call goes, and what each answer means: the send loop, written once.

Both clients send through ``Plan.flow``, a generator that yields each HTTP request to make
(an ``Attempt``) and is sent back what came of it (a ``Reply``, or the ``httpx.HTTPError``
that kept it from arriving). It holds every decision; the clients only move bytes, in a loop
of a few lines each (the shape of httpx's ``auth_flow``, which serves its two clients)::

    flow = plan.flow(call)
    attempt = next(flow)
    while True:
        reply = <send attempt>          # Reply(status, content), or the httpx.HTTPError
        attempt = flow.send(reply)      # StopIteration.value: the answer; or it raises

The decisions, which this module owns:

- **Several nodes.** Reads and authentications go to the node that answered last and fail
  over to the others when it cannot be reached (or answers 503). Writes are not repeated
  elsewhere after a connection that may have reached the node.
- **Farms.** A write that reaches a subordinate comes back ``409 not_master`` with the master's
  URL; the call goes there (with the same request id; ``MAX_FOLLOWS`` times at most) and later
  writes go there first. A master that cannot be connected to (stopped after a handover)
  sends the write on to the other nodes, which name the master now. A ``not_master`` that
  names no node to follow (a handover under way: the node hands over, names itself, or the
  nodes name each other) is sent again to every node after a short pause, a few times: a node
  that answers ``not_master`` changed nothing, so the write is safe to repeat.
- **Versions.** Before the first ``/v1/`` call to a node, its ``GET /version`` is read; a node
  that does not serve this client's SDK version is refused with ``NodeTooOld``.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import httpx
import msgspec

from ..errors import NodeTooOld, NotMaster, OpenMfaError, Unavailable
from .calls import Call, Requests
from .errors import from_answer
from .models import SDK_VERSION, VersionInfo

__all__ = ["HANDOVER_PAUSES", "MAX_FOLLOWS", "Attempt", "Flow", "Plan", "Reply", "Try"]

T = TypeVar("T")

MAX_FOLLOWS = 3
"""How many ``not_master`` answers one call follows: a subordinate not yet told of a handover
names the former master, which names the new one (two); a third is spare, and the bound ends
a loop between nodes that name each other."""

HANDOVER_PAUSES = (0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0)
"""The pauses (seconds) before a write refused ``not_master`` with no master to follow is
sent again: about 6 s in all, longer than a farm's handover takes (promote, rollback)."""


@dataclass(frozen=True)
class Attempt:
    """One HTTP request for a client to make, fully described."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str | int | float] | None = None
    content: bytes | None = None
    timeout: float | None = None
    """Seconds to wait for the answer; None: the client's own timeout."""
    pause: float = 0.0
    """Seconds the client waits before sending it (a handover under way: ``HANDOVER_PAUSES``)."""

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``request`` of ``httpx.Client`` and ``httpx.AsyncClient``."""
        return {
            "method": self.method,
            "url": self.url,
            "params": self.params,
            "content": self.content,
            "headers": self.headers,
            "timeout": httpx.USE_CLIENT_DEFAULT if self.timeout is None else self.timeout,
        }


class Reply(NamedTuple):
    """What a node answered to an ``Attempt``."""

    status: int
    content: bytes


Flow = Generator[Attempt, Reply | httpx.HTTPError, T]
"""One call's way through the nodes: yields attempts, is sent their replies, returns the
answer (or raises the call's error)."""


@dataclass
class Try:
    """What to do after one attempt."""

    value: Any = None
    error: OpenMfaError | None = None
    next_url: str | None = None
    """Where to send it next (a farm's master), or None: done (value or error)."""
    failover: bool = False
    """Try the next node of the list."""
    again: bool = False
    """Refused unchanged during a handover: send it again to every node after a pause."""


class Plan:
    """One client's shared decisions: which node to ask, what an answer means. It remembers,
    across the calls of its client, the node that answered last, the farm's master and the
    nodes whose version was checked."""

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str,
        *,
        check_version: bool = True,
        pauses: Sequence[float] = HANDOVER_PAUSES,
    ) -> None:
        """``pauses``: before each new try of a write refused during a handover (none for a
        node in the same process, which every try would reach again)."""
        listed = [urls] if isinstance(urls, str) else list(urls)
        if not listed:
            raise ValueError("give at least one node URL")
        self.urls = [u.rstrip("/") for u in listed]
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.check = check_version
        self.preferred = 0
        self.master: str | None = None
        self.checked: set[str] = set()
        self.pauses = tuple(pauses)

    def flow(self, call: Call[T], request_id: str | None = None) -> Flow[T]:
        """Send ``call``: the one send loop both clients drive (see the module's text)."""
        rid = request_id or uuid.uuid4().hex
        last: OpenMfaError = Unavailable("no node was asked")
        queue = self.order(call)
        followed = 0
        pauses = iter(self.pauses)
        pause = 0.0
        while queue:
            url = queue.pop(0)
            reply: Reply | httpx.HTTPError | None = None
            if self.check and url not in self.checked and call.path.startswith("/v1/"):
                version = Requests.version()
                reply = yield Attempt("GET", url + version.path, self.headers, pause=pause)
                pause = 0.0
                if isinstance(reply, Reply):
                    self.check_version(url, self._value(version, url, reply))
                    reply = None
            if reply is None:
                reply = yield Attempt(
                    call.method,
                    url + call.path,
                    self.headers_for(call, rid),
                    params=call.params or None,
                    content=call.body,
                    timeout=call.timeout,
                    pause=pause,
                )
                pause = 0.0
            if isinstance(reply, Reply):
                step = self.answered(call, url, reply.status, reply.content, followed=followed)
            else:  # this node, or its /version, could not be reached
                step = self.unreachable(call, url, reply)
            if step.next_url is not None:
                queue, followed = [step.next_url], followed + 1
            elif step.error is None:
                return step.value  # type: ignore[no-any-return]
            else:
                last = step.error
                if step.again and (wait := next(pauses, None)) is not None:
                    ring = self.order(call)  # the node that refused last
                    queue, followed, pause = [*(u for u in ring if u != url), url], 0, wait
                elif not step.failover:
                    break
        raise last

    def _value(self, call: Call[T], url: str, reply: Reply) -> T:
        step = self.answered(call, url, reply.status, reply.content)
        if step.error is not None:
            raise step.error
        return step.value  # type: ignore[no-any-return]

    def order(self, call: Call[Any]) -> list[str]:
        n = len(self.urls)
        ring = [self.urls[(self.preferred + i) % n] for i in range(n)]
        if call.kind == "write" and self.master is not None:
            # The master first; the others only when it could not be connected to (a master
            # that stopped after a handover): a write that never reached a node is safe to send
            # on, and a subordinate answers not_master naming the master now (or takes it, if it
            # leads now).
            return [self.master, *(u for u in ring if u != self.master)]
        return ring

    def headers_for(self, call: Call[Any], request_id: str) -> dict[str, str]:
        headers = {**self.headers, **call.headers, "X-Request-ID": request_id}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def answered(
        self, call: Call[Any], url: str, status: int, content: bytes, *, followed: int = 0
    ) -> Try:
        """What ``url``'s answer means; ``followed``: how often this call has followed a
        ``not_master`` already (counted per call: another call of the same client, told the
        same at the same moment, must not stop this one from following)."""
        if status < 400:
            if url in self.urls:
                self.preferred = self.urls.index(url)
            return Try(value=call.decode(content))
        try:
            body = msgspec.json.decode(content)
        except msgspec.DecodeError:
            body = None
        error = from_answer(status, body, content.decode(errors="replace"))
        if isinstance(error, NotMaster) and call.kind == "write" and error.master_url:
            master = error.master_url.rstrip("/")
            if master != url and followed < MAX_FOLLOWS:
                self.master = master
                return Try(next_url=master)
        if isinstance(error, NotMaster) and call.kind == "write":
            return Try(error=error, again=True)  # a handover under way: nothing was changed
        if status == 503 and call.kind != "write":
            return Try(error=error, failover=True)
        return Try(error=error)

    def unreachable(self, call: Call[Any], url: str, exc: httpx.HTTPError) -> Try:
        error = Unavailable(f"the node at {url} could not be reached: {exc!r}")
        if call.kind == "write" and self.master == url:
            self.master = None  # ask the list again next time
        connect = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        # A read may be repeated anywhere; anything else only if it never reached the node.
        return Try(error=error, failover=connect or call.method == "GET")

    def check_version(self, url: str, info: VersionInfo) -> None:
        if SDK_VERSION not in info.sdk_versions:
            raise NodeTooOld(
                f"the node at {url} (OpenMFA {info.release}) serves SDK versions "
                f"{info.sdk_versions}; this client speaks version {SDK_VERSION}. Upgrade the "
                "node first (nodes go before the apps that use them)"
            )
        self.checked.add(url)
