"""Forward-auth's pure parts: the return address a sign-in may go back to, and the cookie."""

from __future__ import annotations

import asyncio
import base64

import pytest

from openmfa.portal.forward_auth import Bearer, Cookies, ForwardAuthConfig, in_domain
from openmfa.portal.revocations import RevocationView
from openmfa.sdk.models import SessionEnd, SessionsEnded


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://app.example.com/reports?mail=a@b.c", True),
        ("http://example.com:8080/", True),
        ("https://APP.Example.com/", True),
        ("https://example.com.evil.org/", False),
        ("https://example.com@evil.org/", False),  # user-info: the host is evil.org
        ("https://evil.org\\@app.example.com/", False),  # a browser reads \ as /: evil.org
        ("javascript:alert(1)//app.example.com", False),
        ("//app.example.com/", False),  # no scheme
        ("https://app.example.com/\r\nSet-Cookie: x", False),
        ("https://notexample.com/", False),
    ],
)
def test_a_sign_in_goes_back_only_to_the_cookie_domain(url: str, ok: bool) -> None:
    assert in_domain(url, "example.com") is ok


def test_the_cookie_is_sealed_and_checked_by_key_expiry_and_version() -> None:
    cfg = ForwardAuthConfig("example.com", "openmfa_auth", 60.0, b"k" * 32, "")
    cookies = Cookies(cfg)
    value = cookies.issue(
        "ada", "ada@example.com", "Ada", now=1000.0, session="s1", subject="j1", issued_at=990.0
    ).encode()
    assert cookies.check(value, 1010.0) == Bearer(
        "ada", "ada@example.com", "Ada", "s1", "j1", 990.0
    )
    for readable in (b"ada", b"example.com", b"s1"):  # sealed: nothing of it can be read
        assert readable not in base64.urlsafe_b64decode(value[3:] + b"=" * (-len(value) % 4))
    assert cookies.check(value, 1060.0) is None  # expired
    other = Cookies(ForwardAuthConfig("example.com", "openmfa_auth", 60.0, b"j" * 32, ""))
    assert other.check(value, 1010.0) is None  # another key
    version, body = value.split(b".")
    assert cookies.check(b"v1." + body, 1010.0) is None
    assert cookies.check(version + b"." + body[:-2] + b"AA", 1010.0) is None  # tampered
    for junk in (b"", b"v2", b"v2.", b"v2.!!!", b"v2." + b"x" * 5000, b"v1.e30.abc"):
        assert cookies.check(junk, 1010.0) is None
    assert cookies.check(cookies.issue("bob", "", "", 1000.0).encode(), 1010.0) is not None


def _page(*ends: SessionEnd, locked: tuple[str, ...] = (), now: float = 2000.0) -> SessionsEnded:
    last = max((e.id for e in ends), default=0)
    return SessionsEnded(
        ends=list(ends), locked=list(locked), last_id=last, more=False, keep_seconds=86400.0,
        now=now,
    )  # fmt: skip


def test_the_revocation_view_ends_sessions_and_fails_closed_when_stale() -> None:
    clock = [100.0]
    pages: list[SessionsEnded] = []
    asked: list[int] = []

    async def fetch(after: int) -> SessionsEnded:
        asked.append(after)
        if not pages:
            raise ConnectionError("node down")
        return pages.pop(0)

    view = RevocationView(fetch, 2.0, 30.0, clock=lambda: clock[0])
    assert not view.stands("j1", "s1", 1500.0, 2000.0)  # never heard from a node: refused
    pages.append(_page())
    asyncio.run(view.refresh())
    assert view.stands("j1", "s1", 1500.0, 2000.0)
    pages.append(_page(SessionEnd(id=1, subject="j1", session="s1", at=1600.0)))
    asyncio.run(view.refresh())
    assert not view.stands("j1", "s1", 1500.0, 2000.0)  # this session signed out
    assert view.stands("j1", "s2", 1500.0, 2000.0)  # another of the same person stands
    pages.append(_page(SessionEnd(id=2, subject="j1", session="", at=1700.0)))
    asyncio.run(view.refresh())
    assert asked[-1] == 1  # only what is new
    assert not view.stands("j1", "s2", 1500.0, 2000.0)  # everywhere: issued before 1700
    assert view.stands("j1", "s3", 1800.0, 2000.0)  # a later sign-in stands
    pages.append(_page(locked=("j2",), now=2000.0))
    asyncio.run(view.refresh())
    assert not view.stands("j2", "s4", 1900.0, 2000.0)  # locked now
    pages.append(_page(now=2100.0))
    asyncio.run(view.refresh())
    assert not view.stands("j2", "s4", 1900.0, 2100.0)  # the lock is over, its end stays
    assert view.stands("j2", "s5", 2050.0, 2100.0)
    assert not view.stands("j1", "s3", 2000.0 - 86400.0, 2100.0)  # older than the node keeps
    clock[0] += 31.0  # no answer for longer than 30 s: every cookie refused
    assert not view.stands("j2", "s5", 2050.0, 2100.0)
    with pytest.raises(ConnectionError):
        asyncio.run(view.refresh())
    assert not view.stands("j2", "s5", 2050.0, 2100.0)
    pages.append(_page(now=2100.0))
    asyncio.run(view.refresh())
    assert view.stands("j2", "s5", 2050.0, 2100.0)  # heard again


def test_a_new_farm_epoch_reads_what_ended_from_the_first_row() -> None:
    """After a promotion that lost rows, the new master may number rows again: a host that
    had read up to row 5 reads from row 0 again when the epoch changes."""
    asked: list[int] = []
    pages = [
        SessionsEnded(
            ends=[SessionEnd(id=5, subject="j1", session="s1", at=1.0)], locked=[], last_id=5,
            more=False, keep_seconds=86400.0, now=2000.0, epoch=1,
        ),
        SessionsEnded(
            ends=[], locked=[], last_id=5, more=False, keep_seconds=86400.0, now=2000.0, epoch=2
        ),
        SessionsEnded(
            ends=[SessionEnd(id=5, subject="j2", session="s2", at=2.0)], locked=[], last_id=5,
            more=False, keep_seconds=86400.0, now=2000.0, epoch=2,
        ),
    ]  # fmt: skip

    async def fetch(after: int) -> SessionsEnded:
        asked.append(after)
        return pages.pop(0)

    view = RevocationView(fetch, 2.0, 30.0)
    asyncio.run(view.refresh())
    asyncio.run(view.refresh())
    assert asked == [0, 5, 0]
    assert not view.stands("j1", "s1", 1500.0, 2000.0)  # what it knew stays
    assert not view.stands("j2", "s2", 1500.0, 2000.0)  # the renumbered row is read


def test_forward_auth_reports_last_seen_once_a_minute_per_session_off_its_path() -> None:
    """Through the gate itself (an ASGI call, no proxy): a cookie let through is noted, no
    call to the node on the check's path; the view's loop sends the notes in one batch; the
    same session is noted again only a minute later; a refused cookie is never noted; a node
    that does not take a batch costs that round only."""
    import time as real_time

    from openmfa.errors import Unavailable
    from openmfa.portal.forward_auth import ForwardAuthGate
    from openmfa.portal.seen import CookieReports

    clock = [1000.0]
    sent: list[list[tuple[str, str]]] = []
    down = [False]

    async def post(seen: list[tuple[str, str]]) -> None:
        if down[0]:
            raise Unavailable("no node answers")
        sent.append(seen)

    reports = CookieReports(post, clock=lambda: clock[0])
    cfg = ForwardAuthConfig("example.com", "openmfa_auth", 3600.0, b"k" * 32, "")
    cookies = Cookies(cfg)
    view = RevocationView(_fetch_nothing, 2.0, 30.0)
    asyncio.run(view.refresh())
    view.after = reports.send

    async def inner(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the gate answers /auth itself")

    gate = ForwardAuthGate(inner, cfg, "/auth", view, reports)

    def check(user: str, session: str) -> int:
        now = real_time.time()
        value = cookies.issue(user, "", "", now, session=session, subject="j-" + user)
        got: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request"}

        async def send(message: dict[str, object]) -> None:
            got.append(message)

        scope = {
            "type": "http",
            "path": "/auth",
            "headers": [(b"cookie", f"openmfa_auth={value}".encode())],
        }
        asyncio.run(gate(scope, receive, send))
        return int(got[0]["status"])  # type: ignore[call-overload]

    assert check("ada", "s1") == 200 and check("ada", "s1") == 200
    assert check("bob", "s2") == 200
    assert sent == []  # nothing on the check's path
    asyncio.run(view.after())
    assert sent == [[("ada", "s1"), ("bob", "s2")]]
    clock[0] += 30
    assert check("ada", "s1") == 200
    asyncio.run(reports.send())
    assert len(sent) == 1  # within the minute: not again
    clock[0] += 31
    check("ada", "s1")
    down[0] = True
    asyncio.run(reports.send())  # the node does not take it: dropped, nothing raised
    down[0] = False
    asyncio.run(reports.send())
    assert len(sent) == 1
    clock[0] += 61
    check("ada", "s1")
    view.heard = float("-inf")  # a stale view refuses every cookie: none is noted
    assert check("cy", "s3") == 302
    view.heard = view.clock()
    asyncio.run(reports.send())
    assert sent[-1] == [("ada", "s1")]


async def _fetch_nothing(after: int) -> SessionsEnded:
    return _page()
