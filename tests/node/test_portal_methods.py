"""A signed-in user's own methods (``node.portal_methods``) against a real data file: an
authenticator app offered and saved only once proven, and backup codes renewed."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from openmfa.config import Config
from openmfa.core.totp import totp
from openmfa.errors import InvalidInput, Unauthorized
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.portal import OFFER, PortalTokens
from openmfa.node.portal_methods import PortalMethods
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
