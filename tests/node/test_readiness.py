"""``/readyz``'s answer comes from memory: checked off the request path, stale when the store
stops answering."""

from __future__ import annotations

import threading

from openmfa.node.readiness import Readiness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_ready_until_the_first_check() -> None:
    r = Readiness(lambda: (True, "ok"))
    assert r.state() == (False, "the node is starting")
    r.refresh()
    assert r.state() == (True, "ok")


def test_the_answer_is_the_last_check_and_never_runs_one() -> None:
    calls = []

    def check() -> tuple[bool, str]:
        calls.append(1)
        return False, "the data file is at schema revision 0002, this release needs 0003"

    r = Readiness(check)
    r.refresh()
    for _ in range(10):
        assert r.state() == (
            False,
            "the data file is at schema revision 0002, this release needs 0003",
        )
    assert len(calls) == 1


def test_a_store_that_stops_answering_makes_the_node_not_ready() -> None:
    clock = Clock()
    r = Readiness(lambda: (True, "ok"), stale_after=15, clock=clock)
    r.refresh()
    clock.now += 14
    assert r.state() == (True, "ok")
    clock.now += 2
    ready, why = r.state()
    assert not ready and "has not answered a readiness check for 16 s" in why


def test_a_failing_check_is_not_ready_with_the_reason() -> None:
    def check() -> tuple[bool, str]:
        raise RuntimeError("connection refused")

    r = Readiness(check)
    r.refresh()
    assert r.state() == (False, "readiness check failed: connection refused")


def test_the_thread_keeps_it_current_and_stops() -> None:
    answers = iter([(True, "ok"), (False, "gone")])
    seen = threading.Event()

    def check() -> tuple[bool, str]:
        try:
            return next(answers)
        except StopIteration:
            seen.set()
            return False, "gone"

    r = Readiness(check, every=0.01)
    r.start()
    try:
        assert seen.wait(10)
        assert r.state() == (False, "gone")
    finally:
        r.stop()
    assert r._thread is None
