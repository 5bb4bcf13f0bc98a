"""The mobile service's view of open push requests, fed by a node's event stream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from openmfa.mobile.app import DeviceBook, DeviceWaiters, EventPump
from openmfa.sdk.models import PushEvent, PushEvents, PushRequestView


def _request(push_id: str) -> PushRequestView:
    now = time.time()
    return PushRequestView(
        id=push_id, user="pia", client="vpn", source="", created_at=now,
        expires_at=now + 60, nonce="n" * 22,
    )  # fmt: skip


class OneBatch:
    """A node that answers the first events call with ``batch``, then has nothing more."""

    def __init__(self, batch: PushEvents) -> None:
        self.batches = [batch]

    async def push_events(self, boot: str, after: int, wait: float) -> PushEvents:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("not reached")


def test_a_request_opened_and_answered_in_one_batch_is_not_shown() -> None:
    """A service that starts after a node ran a while gets all the node's kept events at once:
    the answered ones must not come back as open (seen when the mobile host was upgraded)."""
    batch = PushEvents(
        boot="b1",
        seq=3,
        events=[
            PushEvent(seq=1, request=_request("p-answered"), devices=["d1"]),
            PushEvent(seq=3, request=_request("p-open"), devices=["d1"]),
        ],
        closed=["p-answered"],
    )
    book, waiters = DeviceBook(), DeviceWaiters()

    async def scenario() -> list[PushRequestView]:
        sdk: Any = OneBatch(batch)
        pump = EventPump(sdk, waiters, None, book)
        held = asyncio.create_task(waiters.wait("d1", 10))
        await asyncio.sleep(0)  # the device's poll is held before the events arrive
        task = asyncio.create_task(pump.run())
        woken = await asyncio.wait_for(held, 10)
        for _ in range(1000):
            if pump.after == 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        assert pump.after == 3 and pump.boot == "b1"
        return woken

    woken = asyncio.run(scenario())
    assert [r.id for r in woken] == ["p-open"]
    assert [r.id for r in book.waiting("d1")] == ["p-open"]


def test_a_new_master_run_forgets_what_was_kept() -> None:
    """After a failover (or a restart), requests kept from the old run are not shown, and the
    devices' next polls go to the node again: it lists their open requests afresh."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from openmfa.core import push as proto
    from openmfa.sdk.models import DevicePoll

    book, waiters = DeviceBook(), DeviceWaiters()
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def poll(nonce: str) -> tuple[str, str]:
        body = {"v": proto.PROTOCOL, "op": "poll", "device_id": "d2", "ts": int(time.time())}
        body["nonce"] = nonce
        return proto.sign_message(key, body)

    book.opened(_request("p-old"), ["d1"])
    book.vouched(
        DevicePoll(
            device_id="d2", requests=[_request("p-two")], alg="ES256", public_key=proto.b64u(spki)
        )
    )
    assert [r.id for r in book.waiting("d1")] == ["p-old"]
    assert book.check(*poll("n" * 16)) == "d2"  # checked here, without the node
    batch = PushEvents(
        boot="b2", seq=1, events=[PushEvent(seq=1, request=_request("p-new"), devices=["d2"])]
    )

    async def scenario() -> None:
        sdk: Any = OneBatch(batch)
        pump = EventPump(sdk, waiters, None, book)
        pump.boot = "b1"
        task = asyncio.create_task(pump.run())
        for _ in range(1000):
            if pump.boot == "b2" and pump.after == 1:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert book.check(*poll("m" * 16)) is None  # the node checks it again
    assert book.waiting("d1") == []
    assert [r.id for r in book.waiting("d2")] == ["p-new"]
    # The node's word replaces what was kept for a device.
    book.vouched(DevicePoll(device_id="d2", requests=[]))
    assert book.waiting("d2") == []
