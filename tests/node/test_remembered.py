"""Remembered browsers (``node.remembered``, ``node.portal_sign_in``) against a real data file and
commit queue, on both databases: offered only where a rule allows it, honoured after the
password for the same person under a rule that still allows it, with the original second
factor in the session; ended by forgetting it, sign out everywhere, a password set, a lock;
never for a sign-in Entra ID started; replicated by its change records; not before data format
14."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select, update

from openmfa.config import Config
from openmfa.core.policy import Rule, compile_rule
from openmfa.core.verification import VerifyPolicy
from openmfa.errors import NotFound
from openmfa.node import audit
from openmfa.node.audit import Origin
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.node.portal import AUTH_TIME, EAM, FACTOR, SESSION, TICKET, VIA
from openmfa.node.portal_policy import METHOD_KIND, PORTAL_ITSELF, Purpose
from openmfa.node.portal_sign_in import SignInSteps
from openmfa.node.remembered import window
from openmfa.node.session_ends import SessionEnds
from openmfa.store import formats
from openmfa.store import tables as t
from openmfa.store.changes import Change, apply
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config
from tests.node.test_portal_sign_in import PASSWORD, code_now, run, with_totp

HOME = Origin("198.51.100.7", "Firefox", "Linux")
KEY = "portal-key"


def remember_rule(store: Store, minutes: int = 1440, **kw: object) -> None:
    PolicyRules(store).add(Rule("remember-home", remember_minutes=minutes, **kw))  # type: ignore[arg-type]


async def remembered_sign_in(
    s: SignInSteps, user: str, code: str, purpose: Purpose = PORTAL_ITSELF
) -> str:
    """A full sign-in with ``code`` that asks to be remembered: the browser's token."""
    first = await s.first(user, PASSWORD, KEY, "r1", None, HOME, purpose)
    assert first.accepted and first.ticket and first.remember_minutes == 1440
    second = await s.second(first.ticket, KEY, "r2", None, code=code, origin=HOME, remember=True)
    assert second.accepted and second.token and second.remember_token
    assert second.remember_minutes == 1440
    return second.remember_token


def test_a_remembered_browser_skips_the_second_factor_and_keeps_what_it_was(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "alice")
    with_totp(store, config, "bob")
    remember_rule(store, channels=("portal",))

    async def scenario(s: SignInSteps) -> None:
        before = time.time()
        token = await remembered_sign_in(s, "alice", code_now())
        again = await s.first("alice", PASSWORD, KEY, "r3", None, HOME, remembered=token)
        assert again.accepted and again.reason == "remembered" and again.token
        extra = s.portal.check(again.token, SESSION, KEY, time.time()).extra or {}
        assert extra[FACTOR] == "otp" and extra[METHOD_KIND] == "totp"
        assert before <= float(extra[AUTH_TIME]) <= time.time()
        # The password is always checked; the token is one person's, of this rule's channel.
        wrong = await s.first("alice", "not it at all", KEY, "r4", None, HOME, remembered=token)
        assert (wrong.accepted, wrong.token) == (False, "")
        other = await s.first("bob", PASSWORD, KEY, "r5", None, HOME, remembered=token)
        assert other.reason == "ok" and other.ticket and not other.token
        site = await s.first(
            "alice", PASSWORD, KEY, "r6", None, HOME, Purpose("forward-auth"), remembered=token
        )
        assert site.reason == "ok" and site.ticket and site.remember_minutes == 0
        junk = await s.first("alice", PASSWORD, KEY, "r7", None, HOME, remembered="x" * 43)
        assert junk.reason == "ok" and junk.ticket

    run(store, config, scenario)
    details = [e.detail for e in audit.query(store, user="alice")]
    assert "second factor remembered by policy rule remember-home" in details
    assert "browser remembered for 1440 minutes by policy rule remember-home" in details
    listed = run(store, config, lambda s: _list(s, "alice"))
    assert [(b.address, b.browser, b.system) for b in listed] == [
        ("198.51.100.7", "Firefox", "Linux")
    ]


async def _list(s: SignInSteps, user: str) -> list:  # type: ignore[type-arg]
    return s.remembered.list(user, time.time()).browsers


def test_no_box_and_no_record_where_no_rule_allows_it(store: Store, config: Config) -> None:
    with_totp(store, config, "cy")

    async def scenario(s: SignInSteps) -> None:
        first = await s.first("cy", PASSWORD, KEY, "r1", None, HOME)
        assert first.ticket and first.remember_minutes == 0
        second = await s.second(first.ticket, KEY, "r2", None, code=code_now(), remember=True)
        assert second.accepted and second.remember_token == ""

    run(store, config, scenario)
    with store.read() as conn:
        assert conn.scalar(select(t.remembered_browsers.c.ref)) is None


def test_forgetting_it_sign_out_everywhere_a_password_set_and_a_lock_end_it(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "dee")
    codes = iter(accounts.enroll("dee", "backup-codes").backup_codes or [])
    remember_rule(store)

    async def asks_again(s: SignInSteps, token: str) -> bool:
        step = await s.first("dee", PASSWORD, KEY, "r9", None, HOME, remembered=token)
        return step.reason == "ok" and bool(step.ticket) and not step.token

    async def forgotten(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "dee", next(codes))
        [view] = s.remembered.list("dee", time.time()).browsers
        try:
            s.remembered.end("someone-else", view.id, client=KEY, rid="r8")
            raise AssertionError("another person forgot dee's browser")
        except NotFound:
            pass
        s.remembered.end("dee", view.id, client=KEY, rid="r8")
        assert s.remembered.list("dee", time.time()).browsers == []
        return await asks_again(s, token)

    async def everywhere(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "dee", next(codes))
        assert SessionEnds(store).end("dee")
        return await asks_again(s, token)

    async def password(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "dee", next(codes))
        set_password(store, accounts, "dee", PASSWORD)  # an administrator sets it again
        return await asks_again(s, token)

    async def lock(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "dee", next(codes))
        with store.write() as conn:  # locked (the fraud action, or failures at any node)
            conn.execute(update(t.user_state).values(failures=9, locked_until=time.time() + 60))
        SessionEnds(store).record_locks(time.time())  # what the master does every 2 s
        with store.write() as conn:  # the lock is over: the record stays forgotten
            conn.execute(update(t.user_state).values(failures=0, locked_until=None))
        return await asks_again(s, token)

    for scenario in (forgotten, everywhere, password, lock):
        assert run(store, config, scenario)
    ended = [e for e in audit.query(store, user="dee") if e.action == "portal.remember"]
    assert [e.result for e in ended].count("ended") == 1


def test_an_oidc_app_gets_it_only_under_its_own_rule_and_never_an_entra_sign_in(
    store: Store, config: Config
) -> None:
    codes = with_totp(store, config, "eve").enroll("eve", "backup-codes").backup_codes or []
    remember_rule(store, channels=("oidc",), clients=("wiki",))
    wiki = Purpose("oidc", "wiki")

    async def scenario(s: SignInSteps) -> None:
        token = await remembered_sign_in(s, "eve", codes[0], wiki)
        again = await s.first("eve", PASSWORD, KEY, "r3", None, HOME, wiki, token)
        assert again.reason == "remembered"
        portal = await s.first("eve", PASSWORD, KEY, "r4", None, HOME, remembered=token)
        assert portal.ticket and not portal.token  # the portal's own rule does not allow it
        # Entra ID's sign-in: no record, whatever is asked.
        ticket, _ = s.portal.issue(TICKET, "eve", KEY, time.time(), {VIA: EAM, **wiki.extra()})
        eam = await s.second(ticket, KEY, "r5", None, code=codes[1], remember=True)
        assert eam.accepted and eam.remember_token == ""

    run(store, config, scenario)


def test_records_replicate_and_wait_for_format_14(
    store: Store, config: Config, tmp_path: Path
) -> None:
    with_totp(store, config, "fay")
    remember_rule(store)
    token = run(store, config, lambda s: remembered_sign_in(s, "fay", code_now()))
    view = run(store, config, lambda s: _list(s, "fay"))[0]
    run(store, config, lambda s: _end(s, "fay", view.id))
    with store.read() as conn:
        records = [
            (r.kind, r.payload)
            for r in conn.execute(select(t.changes.c.kind, t.changes.c.payload))
            if r.kind.startswith("remember.")
        ]
    assert [k for k, _ in records] == ["remember.add", "remember.end"]
    assert token not in str(records)  # only the token's hash travels
    other = Store.create(DataDir(tmp_path / "other"), make_config())
    try:
        with other.write() as conn:
            apply(conn, Change(*records[0]))
        with other.read() as conn:
            assert conn.scalar(select(t.remembered_browsers.c.user_name)) == "fay"
        with other.write() as conn:
            apply(conn, Change(*records[1]))
            apply(conn, Change(*records[1]))  # a replay removes nothing more
        with other.read() as conn:
            assert conn.scalar(select(t.remembered_browsers.c.ref)) is None
    finally:
        other.close()
    # A data set not yet at format 14 (a farm before finalize): no box is offered.
    with store.write() as conn:
        conn.execute(
            update(t.meta)
            .where(t.meta.c.key == "data_format")
            .values(value=str(formats.REMEMBER_FORMAT - 1))
        )

    async def older(s: SignInSteps) -> int:
        step = await s.first("fay", PASSWORD, KEY, "r1", None, HOME)
        return step.remember_minutes

    assert run(store, config, older) == 0


async def _end(s: SignInSteps, user: str, ref: str) -> None:
    s.remembered.end(user, ref, client=KEY, rid="r")


def test_a_rule_that_wants_a_pin_remembers_no_browser() -> None:
    """The PIN is typed at every sign-in: a remembered browser never typed it."""
    base = VerifyPolicy()
    pin = compile_rule(Rule("pin", channels=("portal",), pin="required", remember_minutes=60), base)
    plain = compile_rule(Rule("plain", channels=("portal",), remember_minutes=60), base)
    assert window(pin) == 0 and window(plain) == 60
