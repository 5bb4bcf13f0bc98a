"""The node's wait for new push requests (what the mobile service's event pump long-polls)."""

from __future__ import annotations

import asyncio

from openmfa.node.push_hub import PushHub


def test_a_wait_for_new_requests_ends_when_the_node_is_master_no_more() -> None:
    """A mobile service's long-poll held by the master when it hands the role over: the wait
    ends at the next look (the service asks again and is sent to the new master), instead of
    the new master's requests reaching no phone until the long-poll runs out."""
    hub = PushHub()
    looks: list[bool] = []

    async def still() -> bool:
        looks.append(len(looks) < 1)  # master at the first look, handed over at the second
        return looks[-1]

    async def scenario() -> tuple[int, int]:
        # An hour's wait, bounded here by a minute: only the handover can end it in time.
        got = await asyncio.wait_for(hub.events_after(hub.boot, 0, 3600.0, still), 60)
        return got.seq, len(got.events)

    assert asyncio.run(scenario()) == (0, 0)
    assert looks == [True, False]


def test_a_wait_without_a_master_check_still_ends_on_a_new_request() -> None:
    hub = PushHub()

    async def scenario() -> int:
        waiting = asyncio.create_task(hub.events_after(hub.boot, 0, 3600.0))
        await asyncio.sleep(0)  # the waiter is in place
        hub.opened([])  # no request, but the waiters are told
        got = await asyncio.wait_for(waiting, 60)
        return got.seq

    assert asyncio.run(scenario()) == 0


def test_a_stopping_node_ends_the_long_polls_at_once_and_takes_no_new_wait() -> None:
    """``close`` (the node's shutdown) answers a waiting long-poll with what there is, and a
    long-poll that arrives after it does not wait: neither holds the graceful stop."""
    hub = PushHub()

    async def scenario() -> tuple[int, int]:
        waiting = asyncio.create_task(hub.events_after(hub.boot, 0, 3600.0))
        await asyncio.sleep(0)  # the waiter is in place
        hub.close()
        first = await asyncio.wait_for(waiting, 60)  # an hour's wait: only close ends it
        later = await asyncio.wait_for(hub.events_after(hub.boot, 0, 3600.0), 60)
        return len(first.events), len(later.events)

    assert asyncio.run(scenario()) == (0, 0)


def test_a_push_sign_in_still_waits_for_its_answer_while_the_node_stops() -> None:
    hub = PushHub()

    async def scenario() -> bool:
        waiting = asyncio.create_task(hub.wait_decided("p1", 3600.0))
        await asyncio.sleep(0)
        hub.close()
        await asyncio.sleep(0)
        still_waiting = not waiting.done()
        hub.decided("p1")
        await asyncio.wait_for(waiting, 60)
        return still_waiting

    assert asyncio.run(scenario()) is True
