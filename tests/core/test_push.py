"""The device protocol's message checks (``core.push``): what a device's signed message must
hold, refused with a ``ProtocolError`` (the SDK's 422) before anything is looked up."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from openmfa.core.push import MAX_COUNTER, ProtocolError, Signed, new_nonce, sign_message


def answer(counter: object) -> tuple[str, str]:
    body = {
        "v": 1,
        "op": "answer",
        "device_id": "d1",
        "ts": 1_700_000_000,
        "nonce": new_nonce(),
        "decision": "approve",
        "request_id": "r1",
        "number": "42",
        "counter": counter,
    }
    return sign_message(ec.generate_private_key(ec.SECP256R1()), body)


@pytest.mark.parametrize("counter", [1, 2, MAX_COUNTER])
def test_an_answer_counter_in_range_is_taken(counter: int) -> None:
    assert Signed.decode(*answer(counter), "answer").body["counter"] == counter


@pytest.mark.parametrize("counter", [0, -1, MAX_COUNTER + 1, 2**53 - 1, "7", True])
def test_an_answer_counter_out_of_range_is_a_protocol_error(counter: object) -> None:
    """2**31 and above would not fit the node's column (PostgreSQL: a server error before)."""
    with pytest.raises(ProtocolError, match="counter must be an integer from 1 to"):
        Signed.decode(*answer(counter), "answer")
