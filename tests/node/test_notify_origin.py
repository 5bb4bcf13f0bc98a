"""A notice says where a change came from (issue 36: what happened, when, from where): the
audit row's origin (sealed per user, opened by the notice worker with the node's key) and the
channel it came through, in English and Dutch; a row without one says, as before, the API key
or the node; a seal that does not open is no origin and no failure."""

from __future__ import annotations

import time

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.verification import VerifyPolicy
from openmfa.node import notify_text
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.audit import Origin
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.store.database import Store
from tests.node.test_notify import Mailbox, _notifier


class Row:
    id, at, node, method_id, user_name, detail = 7, 0.0, "n1", "m1", "ada", ""
    action = "method.add"

    def __init__(self, client: str = "portal1") -> None:
        self.client = client


FIREFOX = Origin("203.0.113.7", "Firefox", "Android")


def test_the_from_line_names_the_origin_and_channel_in_english_and_dutch() -> None:
    said = {
        lang: notify_text.render(Row(), lang, origin=FIREFOX, channel="portal")
        for lang in ("en", "nl")
    }
    assert "From: 203.0.113.7 (Firefox on Android), through the portal\n" in said["en"].text
    assert "Vanaf: 203.0.113.7 (Firefox op Android), via het portaal\n" in said["nl"].text
    assert said["en"].facts["from"] == "203.0.113.7 (Firefox on Android), through the portal"
    radius = Row("radius:vpn")
    en = notify_text.render(radius, "en", origin=Origin("198.51.100.4"), channel="radius")
    nl = notify_text.render(radius, "nl", origin=Origin("198.51.100.4"), channel="radius")
    assert "From: 198.51.100.4, through RADIUS client vpn\n" in en.text
    assert "Vanaf: 198.51.100.4, via RADIUS-client vpn\n" in nl.text
    phone = notify_text.render(Row("mobile1"), "nl", origin=Origin("192.0.2.9"), channel="phone")
    assert "Vanaf: 192.0.2.9, via de telefoonapp\n" in phone.text
    app = notify_text.render(Row("grafana"), "en", origin=Origin("192.0.2.1"), channel="")
    assert "From: 192.0.2.1, through grafana\n" in app.text
    only_browser = notify_text.render(Row(), "en", origin=Origin("", "Safari"), channel="portal")
    assert "From: Safari, through the portal\n" in only_browser.text


def test_without_an_origin_the_from_line_is_as_before() -> None:
    for lang, word in (("en", "From"), ("nl", "Vanaf")):
        assert f"{word}: portal1\n" in notify_text.render(Row(), lang).text
        assert f"{word}: n1\n" in notify_text.render(Row(""), lang).text
        assert notify_text.render(Row(), lang, channel="portal").facts["from"] == "portal1"


def test_the_worker_opens_the_rows_origin_for_mail_and_webhook(
    store: Store, config: Config
) -> None:
    """The lockout a failed sign-in causes carries that attempt's origin; the worker opens it
    with the node's key (the data file holds it sealed), a method added with none says the
    client as before."""
    acc = Accounts(store, config)
    acc.add_user("ada", email="ada@example.org")
    ApiKeys(store).create("portal1", "portal")
    box = Mailbox()
    n = _notifier(store, box, security_mailbox="")
    acc.enroll("ada", "totp")
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=2, minutes=15)))
    for _ in range(2):
        auth.run(
            [
                Attempt(
                    "ada",
                    "000000",
                    client="portal1",
                    request_id="r1",
                    source="203.0.113.7",
                    browser="Firefox",
                    system="Android",
                )
            ]
        )
    n.tick(time.time())
    assert [notice.kind for _, notice, _ in box.got] == ["method_added", "locked"]
    assert "From: cli\n" in box.got[0][1].text
    locked = box.got[1][1]
    assert "From: 203.0.113.7 (Firefox on Android), through the portal\n" in locked.text
    assert locked.facts["from"].startswith("203.0.113.7")


def test_a_radius_lockout_says_the_calling_station_and_the_client(
    store: Store, config: Config
) -> None:
    """RADIUS attempts carry the Calling-Station-Id (else the NAS) as their source: the lock
    they end in is noticed from there, through that RADIUS client."""
    acc = Accounts(store, config)
    acc.add_user("bob", email="bob@example.org")
    acc.enroll("bob", "totp")  # (before notices are on: not mailed)
    box = Mailbox()
    n = _notifier(store, box, security_mailbox="", language="nl")
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=2, minutes=15)))
    for _ in range(2):
        auth.run([Attempt("bob", "000000", client="radius:vpn", source="198.51.100.23")])
    n.tick(time.time())
    assert [notice.kind for _, notice, _ in box.got] == ["locked"]
    assert "Vanaf: 198.51.100.23, via RADIUS-client vpn\n" in box.got[0][1].text
