"""Sessions ended (``node.session_ends``): what ends a session, the portal hosts' view of it,
and that a lock's end of sessions outlasts the lock."""

from __future__ import annotations

import time

from sqlalchemy import update

from openmfa.config import Config
from openmfa.farm.feed import changes_since
from openmfa.node.accounts import Accounts
from openmfa.node.session_ends import SessionEnds
from openmfa.store import tables as t
from openmfa.store.database import Store


def test_each_event_ends_sessions_and_the_view_names_no_one(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    for name in ("ada", "bob", "cy", "dee"):
        acc.add_user(name)
    ends = SessionEnds(store)
    before = time.time() - 1
    assert not ends.ended("ada", "s1", before, time.time())
    assert ends.end("ada", "s1")  # a sign-out of one session
    assert ends.ended("ada", "s1", before, time.time())
    assert not ends.ended("ada", "s2", before, time.time())  # her other session stands
    acc.end_sessions("bob")  # sign out everywhere
    acc.update_user("cy", {"enabled": False})
    acc.delete_user("dee")
    now = time.time()
    for name in ("bob", "cy", "dee"):
        assert ends.ended(name, "any", before, now), name
        assert not ends.ended(name, "later", now + 1, now + 2), name  # a later sign-in stands
    view = ends.view(0, now)
    assert [(e.session, e.subject) for e in view.ends] == [
        ("s1", ends.subject("ada")),
        ("", ends.subject("bob")),
        ("", ends.subject("cy")),
        ("", ends.subject("dee")),
    ]
    assert [e.id for e in view.ends] == [1, 2, 3, 4] and view.last_id == 4 and not view.more
    text = repr(view)
    assert all(name not in text for name in ("ada", "bob", "dee"))  # subjects, not names
    assert ends.view(view.last_id, now).ends == []  # only what is new
    kinds = [c["kind"] for c in changes_since(store, 0)]
    assert kinds.count("session.end") == 4  # change records: they replicate


def test_a_lock_ends_sessions_for_good(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("ada")
    ends = SessionEnds(store)
    issued = time.time() - 5
    now = time.time()
    ends.end("ada", "s0")  # an older row, that a long lock must not sweep away
    with store.write() as conn:  # the fraud action's lock: ten years
        conn.execute(update(t.user_state).values(failures=10, locked_until=now + 10 * 365 * 86400))
    assert ends.ended("ada", "s1", issued, now)  # locked: refused
    view = ends.view(0, now)
    assert view.locked == [ends.subject("ada")] and len(view.ends) == 1  # the view only reads
    ends.record_locks(now)  # what the master does every 2 s
    ends.record_locks(now + 1)  # once per lock
    rows = ends.view(0, now).ends
    assert len(rows) == 2 and rows[1].at == now and rows[1].session == ""
    assert ends.ended("ada", "s0", issued, now)  # still there
    with store.write() as conn:  # the lock is over (and forgotten by the next attempt)
        conn.execute(update(t.user_state).values(failures=0, locked_until=None))
    assert ends.ended("ada", "s1", issued, now + 1000)  # the session it ended stays ended
    assert not ends.ended("ada", "s2", now + 1000, now + 1001)  # a later one stands
    acc.add_user("bob")  # locked, then unlocked before the master recorded the lock
    with store.write() as conn:
        conn.execute(update(t.user_state).values(failures=10, locked_until=now + 900))
    acc.unlock("bob")
    assert ends.ended("bob", "s3", issued, time.time() + 1)  # unlocking brings none back
    assert not ends.ended("bob", "s4", time.time() + 1, time.time() + 2)


def test_old_sessions_have_ended_whatever_the_rows(store: Store) -> None:
    ends = SessionEnds(store)
    now = time.time()
    assert ends.ended("ada", "s1", now - 9 * 86400, now)
    assert ends.subject("ada") == SessionEnds(store).subject("ada") != ends.subject("adb")
