"""A remembered browser (``node.remembered``) ends when one of its person's methods is removed
or a device of theirs revoked (``Accounts.remove_method``, under the portal's remove, the SDK's
DELETE of a method, ``openmfa method remove`` and ``openmfa device revoke``), as it does at a
password change: the next sign-in asks the second factor again, audited."""

from __future__ import annotations

import time

from openmfa.config import Config
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.portal_sign_in import SignInSteps
from openmfa.node.push import PushService
from openmfa.store.database import Store
from openmfa.store.remember_records import FORGOTTEN_METHOD
from tests.node.test_portal_sign_in import PASSWORD, run, with_totp
from tests.node.test_push import Phone
from tests.node.test_remembered import HOME, KEY, remember_rule, remembered_sign_in


async def _asks_again(s: SignInSteps, user: str, token: str) -> bool:
    step = await s.first(user, PASSWORD, KEY, "r9", None, HOME, remembered=token)
    return step.reason == "ok" and bool(step.ticket) and not step.token


def test_removing_a_method_or_revoking_a_device_forgets_remembered_browsers(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "eve")
    codes = iter(accounts.enroll("eve", "backup-codes").backup_codes or [])
    hotp = accounts.enroll("eve", "hotp", label="spare")
    push = PushService(store, config, Accounts(store, config))
    phone = Phone()
    device = push.activate(
        push.issue_activation("eve", "phone").code, "ES256", phone.public_key()
    ).device_id
    remember_rule(store)

    async def removed(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "eve", next(codes))
        assert not await _asks_again(s, "eve", token)  # remembered until then
        accounts.remove_method("eve", hotp.method.id)  # not even the method it stood for
        assert s.remembered.list("eve", time.time()).browsers == []
        return await _asks_again(s, "eve", token)

    async def revoked(s: SignInSteps) -> bool:
        token = await remembered_sign_in(s, "eve", next(codes))
        push.revoke("eve", device)
        return await _asks_again(s, "eve", token)

    assert run(store, config, removed)
    assert run(store, config, revoked)
    ended = [e for e in audit.query(store, user="eve") if e.action == "portal.remember"]
    assert [e.detail for e in ended if e.result == "ended"] == [FORGOTTEN_METHOD] * 2


def test_a_removal_with_no_browser_remembered_audits_no_forgetting(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "fay")
    spare = accounts.enroll("fay", "hotp", label="spare")
    accounts.remove_method("fay", spare.method.id)
    actions = [e.action for e in audit.query(store, user="fay")]
    assert "method.remove" in actions and "portal.remember" not in actions
