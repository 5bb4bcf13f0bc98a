"""Where a person is signed in (``node.portal_sessions``): what a portal host reports becomes a
row of theirs (address and browser sealed), a re-authentication stays the same row, a person
ends only their own, and what ended is no longer listed."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from openmfa.config import Config
from openmfa.errors import NotFound, NotMaster
from openmfa.node.accounts import Accounts
from openmfa.node.portal import SESSION, Grant, PortalTokens
from openmfa.node.portal_sessions import PortalSessions, summarise
from openmfa.node.session_ends import SessionEnds
from openmfa.store import tables as t
from openmfa.store.database import Store

FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def _parts(store: Store, config: Config) -> tuple[Accounts, PortalTokens, PortalSessions]:
    acc = Accounts(store, config)
    for name in ("ada", "bob"):
        acc.add_user(name)
    tokens = PortalTokens(store, config)
    return acc, tokens, PortalSessions(store, acc, SessionEnds(store))


def _grant(tokens: PortalTokens, user: str, now: float) -> Grant:
    token, _ = tokens.issue(SESSION, user, "portal", now)
    return tokens.check(token, SESSION, "portal", now)


@pytest.mark.parametrize(
    ("agent", "browser", "system"),
    [
        (FIREFOX_ANDROID, "Firefox", "Android"),
        (CHROME_WINDOWS, "Chrome", "Windows"),
        (CHROME_WINDOWS + " Edg/126.0.0.0", "Edge", "Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/126.0.0.0 Safari/537.36",
            "Chrome",
            "Linux",
        ),
        ("curl/8.5.0", "", ""),
        ("", "", ""),
    ],
)
def test_a_user_agent_is_summarised(agent: str, browser: str, system: str) -> None:
    assert summarise(agent) == (browser, system)


def test_reported_browsers_are_listed_sealed_and_one_row_each(store: Store, config: Config) -> None:
    _, tokens, ps = _parts(store, config)
    now = time.time()
    phone, desk = _grant(tokens, "ada", now), _grant(tokens, "ada", now)
    ps.seen(phone, "192.0.2.7", FIREFOX_ANDROID, [], now)
    seen = ps.seen(desk, "198.51.100.9", CHROME_WINDOWS, [], now + 1)
    assert seen.session_id == desk.session_id and seen.report_seconds == 60
    ps.seen(desk, "198.51.100.9", CHROME_WINDOWS, [], now + 90)  # a minute later: last seen
    again = _grant(tokens, "ada", now + 100)  # the desk re-authenticates: a new session id
    ps.seen(again, "198.51.100.9", CHROME_WINDOWS, [desk.session_id], now + 100)
    listed = ps.list(again, now + 101).sessions
    assert [(s.browser, s.system, s.address, s.current) for s in listed] == [
        ("Chrome", "Windows", "198.51.100.9", True),
        ("Firefox", "Android", "192.0.2.7", False),
    ]
    assert listed[0].first_seen == now + 1 and listed[0].last_seen == now + 100
    assert ps.list(_grant(tokens, "bob", now), now).sessions == []  # nobody else's
    with store.read() as conn:
        sealed = conn.execute(select(t.portal_sessions.c.seen_enc)).scalars().all()
    assert sealed and all(b"192.0.2.7" not in s and b"Firefox" not in s for s in sealed)


def test_ending_one_ends_every_session_it_held_and_only_its_owner_can(
    store: Store, config: Config
) -> None:
    _, tokens, ps = _parts(store, config)
    ends = SessionEnds(store)
    now = time.time()
    phone, desk = _grant(tokens, "ada", now), _grant(tokens, "ada", now)
    later = _grant(tokens, "ada", now + 5)  # the phone re-authenticated
    ps.seen(phone, "192.0.2.7", FIREFOX_ANDROID, [], now)
    ps.seen(later, "192.0.2.7", FIREFOX_ANDROID, [phone.session_id], now + 5)
    ps.seen(desk, "198.51.100.9", CHROME_WINDOWS, [], now)
    ref = next(s.id for s in ps.list(desk, now + 6).sessions if not s.current)
    bob = _grant(tokens, "bob", now)
    with pytest.raises(NotFound):  # another person's ref: as if there were none
        ps.end(bob, ref, client="portal", rid="")
    for forged in ("forged-" + "x" * 200, ref + "x", ref[:-1], ""):
        with pytest.raises(NotFound):
            ps.end(desk, forged, client="portal", rid="")
    assert not ends.ended("ada", phone.session_id, phone.issued_at, now + 6)
    ps.end(desk, ref, client="portal", rid="r1")
    for g in (phone, later):  # both of the phone's sessions: the forward-auth cookie too
        assert ends.ended("ada", g.session_id, g.issued_at, now + 7)
    assert not ends.ended("ada", desk.session_id, desk.issued_at, now + 7)
    assert [s.current for s in ps.list(desk, now + 7).sessions] == [True]
    with pytest.raises(NotFound):  # ended already
        ps.end(desk, ref, client="portal", rid="")


def test_sessions_that_ended_otherwise_are_not_listed(store: Store, config: Config) -> None:
    acc, tokens, ps = _parts(store, config)
    now = time.time()
    old = _grant(tokens, "ada", now - 10)
    ps.seen(old, "192.0.2.7", FIREFOX_ANDROID, [], now - 10)
    SessionEnds(store).end("ada", old.session_id)  # signed out of it
    mine = _grant(tokens, "ada", now)
    ps.seen(mine, "198.51.100.9", CHROME_WINDOWS, [], now)
    assert [s.current for s in ps.list(mine, now).sessions] == [True]
    acc.end_sessions("ada")  # sign out everywhere
    fresh = _grant(tokens, "ada", time.time() + 1)
    assert ps.list(fresh, time.time() + 1).sessions == []


def test_rows_live_at_the_master(store: Store, config: Config) -> None:
    _, tokens, ps = _parts(store, config)
    with store.write() as conn:  # what joining a farm as a subordinate records
        conn.execute(
            insert(t.meta),
            [
                {"key": "farm.role", "value": "subordinate"},
                {"key": "farm.master_url", "value": "https://master.example:8443"},
            ],
        )
    g = _grant(tokens, "ada", time.time())
    with pytest.raises(NotMaster) as caught:
        ps.seen(g, "192.0.2.7", "", [], time.time())
    assert caught.value.master_url == "https://master.example:8443"
    with pytest.raises(NotMaster):
        ps.list(g, time.time())


def test_forward_auth_moves_last_seen_of_the_browser_that_holds_the_session(
    store: Store, config: Config
) -> None:
    """A cookie forward-auth let through names its person and node session: the row of the
    browser that held it moves its last seen; another person's session, an unknown one, or
    one no row holds changes nothing and makes no row."""
    from openmfa.contract import CookieSeen

    _, tokens, ps = _parts(store, config)
    now = time.time()
    phone, bob = _grant(tokens, "ada", now), _grant(tokens, "bob", now)
    ps.seen(phone, "192.0.2.7", FIREFOX_ANDROID, [], now)
    ps.seen(bob, "198.51.100.9", CHROME_WINDOWS, [], now)
    ps.cookies_seen(
        [
            CookieSeen(user="ada", session=phone.session_id),
            CookieSeen(user="ada", session=bob.session_id),  # bob's, named as ada's
            CookieSeen(user="cy", session="nobody-holds-this"),
        ],
        now + 120,
    )
    ps.cookies_seen([], now + 130)
    (ada_row,) = ps.list(phone, now + 121).sessions
    (bob_row,) = ps.list(bob, now + 121).sessions
    assert ada_row.last_seen == now + 120 and ada_row.first_seen == now
    assert ada_row.address == "192.0.2.7"  # where it was seen stays the portal's word
    assert bob_row.last_seen == now
    ps.cookies_seen([CookieSeen(user="ada", session=phone.session_id)], now + 60)  # older
    assert ps.list(phone, now + 121).sessions[0].last_seen == now + 120  # never back
    with store.read() as conn:
        assert len(conn.execute(select(t.portal_sessions.c.ref)).all()) == 2
