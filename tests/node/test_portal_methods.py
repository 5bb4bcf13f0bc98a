"""A signed-in user's own methods (``node.portal_methods``) against a real data file: an
authenticator app offered and saved only once proven, and backup codes renewed."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Row, delete, insert, select

from openmfa.config import Config
from openmfa.core.totp import totp
from openmfa.errors import Conflict, InvalidInput, NotFound, Unauthorized
from openmfa.node import audit
from openmfa.node.accounts import Accounts, Actor
from openmfa.node.portal import OFFER, PortalTokens
from openmfa.node.portal_methods import PortalMethods, check_method_name
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.conftest import make_config


def methods_for(store: Store, config: Config) -> PortalMethods:
    return PortalMethods(Accounts(store, config), PortalTokens(store, config), config)


def key_of(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def test_an_offered_app_is_saved_only_with_its_right_code(store: Store, config: Config) -> None:
    methods = methods_for(store, config)
    methods.accounts.add_user("alice")
    offer = methods.totp_offer("alice", "portal-key", "my phone")
    uri = urlsplit(offer.otpauth_uri)
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [offer.secret]
    assert len(key_of(offer.secret)) == 20  # SHA1's 160 bits
    grant = methods.portal.check(offer.offer, OFFER, "portal-key", time.time())
    assert grant.user == "alice" and offer.expires_at == grant.expires_at

    async def scenario() -> str:
        with pytest.raises(InvalidInput, match="not the code the app shows"):
            await methods.totp_confirm("alice", "portal-key", "r1", offer.offer, "000000")
        assert methods.accounts.list_methods("alice") == []
        with pytest.raises(Unauthorized, match="not the signed-in user's"):
            await methods.totp_confirm("bob", "portal-key", "r1", offer.offer, "000000")
        with pytest.raises(Unauthorized):  # an offer is the portal's it was made for
            await methods.totp_confirm("alice", "other", "r1", offer.offer, "000000")
        code = totp(key_of(offer.secret), time.time())
        saved = await methods.totp_confirm("alice", "portal-key", "r1", offer.offer, code)
        assert (saved.kind, saved.label, saved.digits, saved.period) == ("totp", "my phone", 6, 30)
        return saved.id

    method_id = asyncio.run(scenario())
    assert [m.id for m in methods.accounts.list_methods("alice")] == [method_id]
    events = audit.query(store, user="alice", actions=("method.add",))
    assert [(e.client, e.request_id, e.method_id) for e in events] == [
        ("portal-key", "r1", method_id)
    ]


def test_an_offer_follows_enroll_settings(store: Store, config: Config) -> None:
    sha256 = make_config(enroll={"algorithm": "SHA256", "digits": 8, "issuer": "Example"})
    methods = methods_for(store, sha256)
    methods.accounts.add_user("carol")
    offer = methods.totp_offer("carol", "portal-key", "")
    assert len(key_of(offer.secret)) == 32
    query = parse_qs(urlsplit(offer.otpauth_uri).query)
    assert query["algorithm"] == ["SHA256"] and query["digits"] == ["8"]
    assert query["issuer"] == ["Example"]
    code = totp(key_of(offer.secret), time.time(), digits=8, algorithm="SHA256")
    saved = asyncio.run(methods.totp_confirm("carol", "portal-key", "r3", offer.offer, code))
    assert (saved.digits, saved.algorithm) == (8, "SHA256")


def test_renewed_backup_codes_replace_the_old_ones(store: Store, config: Config) -> None:
    methods = methods_for(store, config)
    methods.accounts.add_user("dave")
    methods.accounts.enroll("dave", "totp", secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    first = asyncio.run(methods.renew_backup_codes("dave", "portal-key", "r2"))
    again = asyncio.run(methods.renew_backup_codes("dave", "portal-key", "r2"))
    assert first.backup_codes and again.backup_codes
    assert set(first.backup_codes).isdisjoint(again.backup_codes)
    kinds = sorted((m.kind, m.id) for m in methods.accounts.list_methods("dave"))
    assert [k for k, _ in kinds] == ["backup-codes", "totp"]
    assert (("backup-codes", again.method.id)) in kinds  # the first set's method is gone
    events = audit.query(store, user="dave", actions=("method.remove",))
    assert [(e.method_id, e.client, e.request_id) for e in events] == [
        (first.method.id, "portal-key", "r2")
    ]


def test_a_person_names_their_own_method(store: Store, config: Config) -> None:
    methods = methods_for(store, config)
    methods.accounts.add_user("erin")
    methods.accounts.add_user("frank")
    app = methods.accounts.enroll("erin", "totp", label="Authenticator app").method
    other = methods.accounts.enroll("frank", "totp").method
    me = Actor(client="portal-key", request_id="r9")
    named = methods.rename("erin", app.id, "  Work phone \u00e9  ", me)
    assert (named.id, named.label) == (app.id, "Work phone \u00e9")
    assert [m.label for m in methods.accounts.list_methods("erin")] == ["Work phone \u00e9"]
    kinds = [r.kind for r in store_changes(store)]
    assert kinds[-1] == "method.label"  # a change record: it replicates
    events = audit.query(store, user="erin", actions=("method.rename",))
    assert [(e.client, e.request_id, e.method_id) for e in events] == [("portal-key", "r9", app.id)]
    assert methods.rename("erin", app.id, "Pixel/7", me).label == "Pixel/7"
    with pytest.raises(NotFound):  # another person's method is as if it did not exist
        methods.rename("erin", other.id, "mine now", me)
    assert methods.accounts.list_methods("frank")[0].label == ""


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 65,
        "bad\x00name",
        "line\nbreak",
        "tab\there",
        "zero\u200bwidth",
        "tag\U000e0041\U000e0042 chars",  # invisible tags (Cf): text smuggled in a name
        "line\u2028separator",
        "para\u2029separator",
        "private\ue000use",
        "unassigned\U000e0080",
    ],
)
def test_a_name_that_is_not_printable_text_is_refused(
    store: Store, config: Config, name: str
) -> None:
    methods = methods_for(store, config)
    methods.accounts.add_user("gina")
    app = methods.accounts.enroll("gina", "totp", label="phone").method
    with pytest.raises(InvalidInput, match="1 to 64 printable"):
        methods.rename("gina", app.id, name, Actor())
    assert methods.accounts.list_methods("gina")[0].label == "phone"
    assert check_method_name("x" * 64) == "x" * 64
    assert check_method_name(" Café\u00a0Pixel/7 📱 ") == "Café\u00a0Pixel/7 📱"


def test_naming_waits_for_data_format_9(store: Store, config: Config) -> None:
    methods = methods_for(store, config)
    methods.accounts.add_user("hank")
    app = methods.accounts.enroll("hank", "totp", label="phone").method
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="8"))
    with pytest.raises(Conflict, match="need data format 9"):
        methods.rename("hank", app.id, "Work phone", Actor())
    assert methods.accounts.list_methods("hank")[0].label == "phone"


def store_changes(store: Store) -> list[Row[Any]]:
    with store.read() as conn:
        return list(conn.execute(select(t.changes).order_by(t.changes.c.seq)))
