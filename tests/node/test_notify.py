"""Security notices (``node.notify``): read from the audit log by a cursor per channel, sent to
the person's sealed address, waiting out a down mail server with backoff (said once), never
losing one, and sent only by the node that writes. The senders here are the seam's stand-ins;
``tests/e2e/test_notify.py`` sends through a real exim."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.verification import VerifyPolicy
from openmfa.errors import ConfigError
from openmfa.node import notify_text
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.notify import Notifier
from openmfa.node.notify_send import Retry, SmtpSender, Undeliverable, WebhookSender
from openmfa.node.notify_text import Notice
from openmfa.node.password_change import PasswordChange
from openmfa.node.passwords import set_password
from openmfa.node.portal import SESSION, PortalTokens
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.conftest import make_config
from tests.node.test_password_change import NEW, OLD, person, run


class Mailbox:
    """Stands in for the SMTP server: takes notices, or is down, or refuses one address."""

    target = "mail server test:25"

    def __init__(self) -> None:
        self.got: list[tuple[str, Notice, str]] = []
        self.down = False
        self.refuses = ""
        self.broken = False

    def send(self, notice: Notice, to: str, message_id: str) -> None:
        if self.down:
            raise Retry("ConnectionRefusedError: [Errno 111] Connection refused")
        if self.broken:
            raise RuntimeError("a bug")
        if to == self.refuses:
            raise Undeliverable("the mail server refuses the address (550)")
        self.got.append((to, notice, message_id))


def _notifier(store: Store, mailbox: Mailbox, **notify: object) -> Notifier:
    config = make_config(notify={"security_mailbox": "sec@example.org", **notify})
    n = Notifier(store, config, smtp=mailbox)  # type: ignore[arg-type]
    n.load_cursors()
    n.settle = 0.0  # (the settling of PostgreSQL's rows has its own test)
    return n


def test_on_postgresql_a_row_is_read_once_it_has_settled(store: Store, config: Config) -> None:
    box = Mailbox()
    fresh = Notifier(store, make_config(notify={}), smtp=box)  # type: ignore[arg-type]
    postgres = store.engine.dialect.name == "postgresql"
    assert fresh.settle == (10.0 if postgres else 0.0)  # ids are given before commit there
    acc = Accounts(store, config)
    acc.add_user("ada", email="ada@example.org")
    n = _notifier(store, box, security_mailbox="")
    n.settle = 10.0
    acc.enroll("ada", "totp")
    n.tick()
    assert box.got == []  # younger than 10 s: a transaction with a lower id may still commit
    n.tick(time.time() + 11)
    assert len(box.got) == 1


def test_a_new_method_is_mailed_to_the_person_and_the_mailbox_a_verification_is_not(
    store: Store, config: Config
) -> None:
    acc = Accounts(store, config)
    acc.add_user("old", email="old@example.org")
    acc.enroll("old", "totp")  # before notices were on: not mailed
    acc.add_user("ada", email="ada@example.org", display_name="Ada L.")
    box = Mailbox()
    n = _notifier(store, box, language="nl")
    assert n.tick() > 0 and box.got == []
    enrolled = acc.enroll("ada", "totp")
    n.tick()
    assert [to for to, _, _ in box.got] == ["ada@example.org", "sec@example.org"]
    _, notice, message_id = box.got[0]
    assert notice.kind == "method_added" and notice.user == "ada"
    assert notice.subject.startswith("Beveiligingsmelding voor ada")
    assert notice.text.startswith("Beste Ada L.,") and enrolled.method.id in notice.text
    assert "Vanaf: cli" in notice.text
    assert message_id.startswith("openmfa.") and message_id.endswith(".person." + store.node_name)
    n.tick()
    assert len(box.got) == 2  # sent once: the cursor moved
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    for _ in range(3):  # verifications are not notices; the lock they end in is
        auth.run([Attempt("ada", "000000", request_id="r1")])
    n.tick()
    assert [(to, notice.kind) for to, notice, _ in box.got[2:]] == [
        ("ada@example.org", "locked"),
        ("sec@example.org", "locked"),
    ]
    assert n.queued() == {"person": (0, 0.0), "security": (0, 0.0)}


def test_a_down_mail_server_delays_keeps_and_is_said_once(
    store: Store, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    acc = Accounts(store, config)
    acc.add_user("ada", email="ada@example.org")
    box = Mailbox()
    n = _notifier(store, box, security_mailbox="")
    box.down = True
    set_password(store, acc, "ada", "correct horse battery")
    acc.grant_bypass("ada", 300)
    caplog.set_level(logging.INFO, "openmfa.notify")
    now = 1_000_000_000.0
    (person,) = n.channels
    backoff = []
    for _ in range(4):  # each try when the backoff is over: 1, 2, 4 s ...
        n.tick(now)
        n.tick(now + 0.5)  # not due yet: no try
        backoff.append(person.next_try - now)
        now = person.next_try
    assert backoff == [1.0, 2.0, 4.0, 8.0]
    assert person.failed_attempts == 4 and box.got == []
    count, age = n.queued()["person"]
    assert count == 2 and age > 0
    down = [r for r in caplog.records if "cannot take them" in r.getMessage()]
    assert len(down) == 1 and "correct horse" not in caplog.text
    # A new start (the node restarted) finds the same two waiting: nothing was lost.
    again = _notifier(store, box, security_mailbox="")
    assert again.queued()["person"][0] == 2
    box.down = False
    n.tick(now)
    assert [notice.kind for _, notice, _ in box.got] == ["password_changed", "bypass_issued"]
    assert "takes them again" in caplog.text
    again.tick()
    assert len(box.got) == 2  # the cursor is read again: no second copy


def test_a_refused_or_missing_address_is_counted_and_the_next_goes(
    store: Store, config: Config
) -> None:
    acc = Accounts(store, config)
    acc.add_user("noaddress")
    acc.add_user("gone", email="gone@example.org")
    acc.add_user("ada", email="ada@example.org")
    box = Mailbox()
    box.refuses = "gone@example.org"
    n = _notifier(store, box, security_mailbox="")
    for name in ("noaddress", "gone", "ada"):
        acc.enroll(name, "totp")
    n.tick()
    assert [to for to, _, _ in box.got] == ["ada@example.org"]
    assert n.channels[0].undeliverable == 2 and n.queued()["person"][0] == 0
    box.broken = True  # a failure no one foresaw: the notice waits like the others
    acc.remove_method("ada", acc.list_methods("ada")[0].id)
    n.tick()
    assert n.channels[0].failed_attempts == 1 and n.queued()["person"][0] == 1
    box.broken = False
    n.tick(time.time() + 2)
    assert box.got[-1][1].kind == "method_removed" and n.queued()["person"][0] == 0


def test_only_the_node_that_writes_sends(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("ada", email="ada@example.org")
    box = Mailbox()
    n = _notifier(store, box)
    acc.enroll("ada", "totp")
    with store.write() as conn:
        conn.execute(insert(t.meta).values(key="farm.role", value="subordinate"))
    n.tick()
    assert box.got == []  # the master mails it (the event is relayed there)
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "farm.role"))
        conn.execute(insert(t.meta).values(key="farm.role", value="shared"))
        conn.execute(
            insert(t.meta).values(key="notify.sender", value='{"node": "other", "until": 9e99}')
        )
    n.tick()
    assert box.got == []  # in a shared-database farm, another node holds the lease
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "notify.sender"))
    n.tick()
    assert len(box.got) == 2


def test_every_notice_reads_in_english_and_dutch_on_one_line_subjects() -> None:
    class Row:
        id, at, node, client, method_id, user_name = 7, 0.0, "n1", "portal", "m1", "ada"
        detail = "line one\nBcc: someone@example.org"

    for action in notify_text.NOTICED:
        for lang in notify_text.LANGUAGES:
            row = Row()
            row.action = action  # type: ignore[attr-defined]
            notice = notify_text.render(row, lang)
            assert "\n" not in notice.subject and "\n" not in notice.facts["detail"]
            assert "1970-01-01 00:00:00 UTC" in notice.text
    row = Row()
    row.action, row.detail = "method.add", "access-code (60 min, single use)"  # type: ignore[attr-defined]
    assert notify_text.render(row, "en").kind == "access_code_issued"


def test_settings_that_would_leak_or_cannot_work_are_refused(tmp_path: Path) -> None:
    def smtp(**notify: object) -> SmtpSender:
        return SmtpSender(make_config(notify={"host": "mail.example.org", **notify}))

    with pytest.raises(ConfigError, match="only for a mail server on this host"):
        smtp(security="none", sender="mfa@example.org")
    with pytest.raises(ConfigError, match="sender"):
        smtp()
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; chmod 600"):
        smtp(sender="mfa@example.org", username="mfa", password_file=str(secret))
    secret.chmod(0o600)
    sender = smtp(sender="mfa@example.org", username="mfa", password_file=str(secret))
    assert sender.password == "s3cret"
    with pytest.raises(ConfigError, match="password_file"):
        smtp(sender="mfa@example.org", username="mfa")
    with pytest.raises(ConfigError, match="webhook_url"):
        WebhookSender(make_config(notify={"webhook_url": "ftp://x"}))
    with pytest.raises(ConfigError, match="security"):
        make_config(notify={"security": "ssl"})


class _Hook(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    bodies: list[dict[str, object]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(_Hook.answers.pop(0) if _Hook.answers else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_webhook_urls_secrets_are_in_no_log_line(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook URL often carries its secret in the path (Slack, Teams: .../services/T/B/key),
    in a user and password, or in the query: the log names the host only."""
    url = "https://hook:pw-in-url@hooks.example.org:8443/services/T0/B0/key-in-path?t=q-token"
    sender = WebhookSender(make_config(notify={"webhook_url": url}))
    assert sender.target == "webhook https://hooks.example.org:8443"
    n = Notifier(store, make_config(notify={}), webhook=sender)
    caplog.set_level(logging.INFO, "openmfa.notify")
    n._failed(n.channels[0], "ConnectError", 1.0)
    assert "hooks.example.org" in caplog.text
    assert not any(s in caplog.text for s in ("pw-in-url", "key-in-path", "q-token", "hook:"))


def test_the_webhook_gets_the_facts_as_json_and_a_failing_one_is_tried_again(
    store: Store, config: Config
) -> None:
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/mfa?token=not-logged"
        n = Notifier(store, make_config(notify={"webhook_url": url, "timeout_seconds": 5.0}))
        n.load_cursors()
        n.settle = 0.0
        (channel,) = n.channels
        assert channel.target == f"webhook http://127.0.0.1:{hook.server_address[1]}"
        acc = Accounts(store, config)
        acc.add_user("ada")
        acc.enroll("ada", "totp")
        acc.grant_bypass("ada", 60)
        _Hook.answers[:] = [503, 204, 400]  # down, then taken, then refused for good
        now = time.time()
        n.tick(now)
        assert channel.failed_attempts == 1 and channel.sent == 0
        n.tick(now + 1)
        assert channel.sent == 1 and channel.undeliverable == 1
        assert [b["event"] for b in _Hook.bodies[-3:]] == [
            "method_added",
            "method_added",
            "bypass_issued",
        ]
        assert _Hook.bodies[-1]["user"] == "ada" and _Hook.bodies[-1]["from"] == "cli"
        assert n.queued()["webhook"] == (0, 0.0)
    finally:
        hook.shutdown()
        hook.server_close()


def test_a_password_the_person_changed_at_the_portal_is_noticed(
    store: Store, config: Config
) -> None:
    """The portal's own change (audited ``password.change``) is the notice "Your password was
    changed" as much as an administrator's; a refused attempt changed nothing and is none."""
    person(store, config, "ada")
    Accounts(store, config).update_user("ada", {"email": "ada@example.org"})
    box = Mailbox()
    n = _notifier(store, box, security_mailbox="")
    portal = PortalTokens(store, config)
    token, _ = portal.issue(SESSION, "ada", "portal-key", time.time() - 1)

    async def change(s: PasswordChange) -> None:
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        assert not (await s.change(grant, "portal-key", "r0", None, OLD, "short")).changed
        assert (await s.change(grant, "portal-key", "r1", None, OLD, NEW)).changed

    run(store, config, change)
    n.tick()
    assert [(to, notice.kind) for to, notice, _ in box.got] == [
        ("ada@example.org", "password_changed")
    ]
    assert NEW not in box.got[0][1].text and OLD not in box.got[0][1].text


def test_the_person_is_mailed_in_the_language_they_read_the_portal_in(
    store: Store, config: Config
) -> None:
    """The portal tells the node the person's language with its report of their browser
    (``/v1/portal/me/seen``); their own mail is in it, the security mailbox's stays in
    ``[notify] language``; a language the node has no words for falls back to that too, and
    before data format 10 nothing is kept (their mail stays in ``[notify] language``)."""
    from sqlalchemy import select, update

    from openmfa.node.portal_sessions import PortalSessions
    from openmfa.node.session_ends import SessionEnds
    from openmfa.store import formats

    acc = Accounts(store, config)
    for name in ("ada", "bob", "cy"):
        acc.add_user(name, email=f"{name}@example.org")
    tokens = PortalTokens(store, config)
    sessions = PortalSessions(store, acc, SessionEnds(store))
    now = time.time()

    def seen(user: str, language: str) -> None:
        token, _ = tokens.issue(SESSION, user, "portal", now)
        grant = tokens.check(token, SESSION, "portal", now)
        sessions.seen(grant, "192.0.2.7", "", [], now, language)

    def language(user: str) -> str | None:
        with store.read() as conn:
            return conn.scalar(select(t.users.c.language).where(t.users.c.name == user))

    seen("ada", "nl")
    seen("bob", "de")  # kept, though the node's notices have no German
    assert (language("ada"), language("bob"), language("cy")) == ("nl", "de", None)
    with store.read() as conn:
        generation = store.generation(conn)
    seen("ada", "nl")  # the same again: nothing written
    with store.read() as conn:
        assert store.generation(conn) == generation
    box = Mailbox()
    n = _notifier(store, box, language="en")
    for name in ("ada", "bob", "cy"):
        acc.enroll(name, "totp")
    n.tick()
    said = {(to, notice.subject.split(":")[0]) for to, notice, _ in box.got}
    assert said == {
        ("ada@example.org", "Beveiligingsmelding voor ada"),
        ("bob@example.org", "Security notice for bob"),
        ("cy@example.org", "Security notice for cy"),
        ("sec@example.org", "Security notice for ada"),
        ("sec@example.org", "Security notice for bob"),
        ("sec@example.org", "Security notice for cy"),
    }
    # A data set not yet at format 10 (a farm mid-upgrade): the language is not written.
    with store.write() as conn:
        conn.execute(
            update(t.meta)
            .where(t.meta.c.key == "data_format")
            .values(value=str(formats.LANGUAGE_FORMAT - 1))
        )
    seen("cy", "nl")
    assert language("cy") is None
