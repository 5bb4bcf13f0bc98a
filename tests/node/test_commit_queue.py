"""The commit queue: concurrent attempts decided and committed together, a bad one costs only
itself, and the authenticator is touched by the commit thread alone."""

from __future__ import annotations

import asyncio
import socket
import threading

from openmfa.core.verification import Decision, Reason
from openmfa.errors import OpenMfaError, StoreError
from openmfa.node.authenticator import Attempt
from openmfa.node.commit_queue import CommitQueue, Job


class FakeAuth:
    """Decides "good" codes as accepted; a batch holding "boom" fails as a whole."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.role: object = None

    def run(self, attempts: list[Attempt]) -> list[Decision | OpenMfaError]:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.gate.wait(10)
        codes = [a.code for a in attempts]
        self.batches.append(codes)
        if "boom" in codes:
            raise RuntimeError("disk I/O error")
        return [
            Decision(c == "good", Reason.OK if c == "good" else Reason.WRONG_CODE) for c in codes
        ]

    def set_role(self, role: object) -> None:
        self.threads.add(threading.current_thread().name)
        self.role = role

    def close(self) -> None:
        pass


def test_concurrent_attempts_are_committed_together() -> None:
    auth = FakeAuth()

    async def scenario() -> list[Decision | OpenMfaError]:
        q = CommitQueue(auth)  # type: ignore[arg-type]
        q.start()
        try:
            auth.gate.clear()  # the first batch waits: the others pile up behind it
            first = asyncio.ensure_future(q.submit(Attempt("u", "good")))
            await asyncio.to_thread(auth.entered.wait, 10)
            rest = [asyncio.ensure_future(q.submit(Attempt("u", "good"))) for _ in range(20)]
            await asyncio.sleep(0)  # (queued before the gate opens; nothing waits on time)
            auth.gate.set()
            return [await first, *[await r for r in rest]]
        finally:
            q.stop()

    results = asyncio.run(scenario())
    assert all(isinstance(r, Decision) and r.accepted for r in results)
    assert sum(len(b) for b in auth.batches) == 21
    assert len(auth.batches) < 21  # grouped: fewer commits than attempts
    assert auth.threads == {"openmfa-commit"}


def test_one_bad_attempt_costs_only_itself() -> None:
    auth = FakeAuth()

    async def scenario() -> list[Decision | OpenMfaError]:
        q = CommitQueue(auth)  # type: ignore[arg-type]
        q.start()
        try:
            auth.gate.clear()
            blocker = asyncio.ensure_future(q.submit(Attempt("u", "good")))
            await asyncio.to_thread(auth.entered.wait, 10)
            batch = [
                asyncio.ensure_future(q.submit(Attempt("u", c)))
                for c in ("good", "boom", "bad", "good")
            ]
            await asyncio.sleep(0)
            auth.gate.set()
            await blocker
            return [await b for b in batch]
        finally:
            q.stop()

    good, boom, bad, good2 = asyncio.run(scenario())
    assert isinstance(good, Decision) and good.accepted
    assert isinstance(boom, StoreError) and "could not record" in boom.message
    assert isinstance(bad, Decision) and bad.reason == Reason.WRONG_CODE
    assert isinstance(good2, Decision) and good2.accepted


def test_settings_change_on_the_commit_thread_between_batches() -> None:
    auth = FakeAuth()

    async def scenario() -> None:
        q = CommitQueue(auth)  # type: ignore[arg-type]
        q.start()
        try:
            await q.run(lambda a: a.set_role("subordinate"))  # type: ignore[attr-defined]
        finally:
            q.stop()

    asyncio.run(scenario())
    assert auth.role == "subordinate" and auth.threads == {"openmfa-commit"}


def test_a_source_is_read_on_the_commit_thread() -> None:
    """What the RADIUS server does: its socket is read, and its answers sent, by this thread."""
    auth = FakeAuth()
    answered: list[tuple[str, str]] = []
    done = threading.Event()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def read(limit: int) -> list[Job]:
        jobs: list[Job] = []
        for _ in range(limit):
            try:
                data = b.recv(100)
            except BlockingIOError:
                break

            def back(result: Decision | OpenMfaError, code: str = data.decode()) -> None:
                assert isinstance(result, Decision)
                answered.append((code, threading.current_thread().name))
                if len(answered) == 3:
                    done.set()

            jobs.append((Attempt("u", data.decode()), back, True))
        return jobs

    async def scenario() -> None:
        q = CommitQueue(auth)  # type: ignore[arg-type]
        q.start()
        try:
            q.add_source(b, read)
            for code in ("good", "bad", "good"):
                a.send(code.encode())
            assert await asyncio.to_thread(done.wait, 10)
            q.remove_source(b)
        finally:
            q.stop()

    asyncio.run(scenario())
    a.close()
    b.close()
    assert sorted(answered) == sorted(
        [("good", "openmfa-commit"), ("bad", "openmfa-commit"), ("good", "openmfa-commit")]
    )
