"""What a node's RADIUS server leaves to its next process (``radius.carry``): sealed, taken
once, and refused (with a warning, nothing else lost) when it does not open."""

from __future__ import annotations

import logging
import time

import pytest

from openmfa.radius import carry
from openmfa.radius.carry import Carried, OpenState, SentAnswer
from openmfa.radius.challenges import ChallengeStates
from openmfa.store.database import Store


def test_left_sealed_and_taken_once(store: Store) -> None:
    now = time.time()
    states = ChallengeStates(60)
    code_state = states.issue("ada", "gw", now)
    push_state = states.issue("bob", "gw", now, "p123:42")
    states.take(code_state, "ada", "gw", now)  # answered: not carried
    left = Carried(
        written=now,
        states=states.carry(now),
        answers=[SentAnswer(["127.0.0.1", 5000], 7, b"a" * 16, b"reply", now)],
        remote_pushes={"p9": now + 100},
    )
    carry.save(store, left)
    path = store.data_dir.root / carry.FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert push_state not in path.read_bytes() and b"p123:42" not in path.read_bytes()
    taken = carry.take(store)
    assert taken == left and not path.exists()
    assert carry.take(store) is None  # once
    after = ChallengeStates(60)
    assert after.restore(taken.states, now) == 1
    assert after.take(push_state, "bob", "gw", now) == "p123:42"
    assert after.take(push_state, "bob", "gw", now) is None  # still single-use
    expired = ChallengeStates(60)
    assert expired.restore([OpenState(b"x", "c", "gw", now - 1, "")], now) == 0


def test_a_file_that_does_not_open_is_refused_and_removed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = store.data_dir.root / carry.FILE
    path.write_bytes(b"\x01" + b"\x00" * 40)  # the right version byte, a wrong seal
    with caplog.at_level(logging.WARNING, logger="openmfa.radius"):
        assert carry.take(store) is None
    assert "not taken over" in caplog.text and not path.exists()


def test_a_file_that_cannot_be_read_does_not_stop_the_start(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = store.data_dir.root / carry.FILE
    path.mkdir()  # read_bytes fails with IsADirectoryError, as it would for another's 0600 file
    with caplog.at_level(logging.WARNING, logger="openmfa.radius"):
        assert carry.take(store) is None
    assert "not taken over" in caplog.text
