"""A site behind forward-auth judges a portal session signed in for something else by its own
policy rule (``node.portal_policy`` ``PortalPolicy.step_up``, the check an OpenID Connect
application's code uses too), through the portal app over a real node in process: a person
signed in at the portal with a backup code who then visits a site whose rule allows only an
authenticator app is sent to confirm it is them under that rule (``/confirm``, for
``forward-auth``) and only then gets the site's cookie and goes back there; a sign-in that
satisfies the rule goes straight back, as before."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import httpx

from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.node.accounts import Accounts
from openmfa.node.policy_rules import PolicyRules
from openmfa.portal.config import load
from tests.portal.test_oidc import PASSWORD, Site, csrf, run, sign_in

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SITE = "https://wiki.example.org/page?x=1"
COOKIE = "openmfa_auth"


def with_forward_auth(site: Site, tmp_path: Path) -> None:
    key = tmp_path / "fa.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    toml = tmp_path / "portal.toml"
    toml.write_text(
        toml.read_text()
        + f'\n[forward_auth]\nenabled = true\ncookie_domain = "example.org"\nkey_file = "{key}"'
        + '\npublic_url = "https://auth.example.org/portal"\n'
    )
    site.portal_cfg = load(toml)


async def visit(c: httpx.AsyncClient) -> httpx.Response:
    """The proxy sent the browser to sign in for the site (a signed-in one: straight on)."""
    return await c.get("/portal/sign-in", params={"rd": SITE})


def code_now() -> str:
    return totp(base64.b32decode(SEED), time.time())


def test_a_portal_session_the_sites_rule_is_not_satisfied_by_steps_up(tmp_path: Path) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        Accounts(site.store, site.config).enroll("alice", "totp", secret=SEED, label="app")
        PolicyRules(site.store).add(Rule("sites-app", channels=("forward-auth",),
                                         methods=("totp",)))  # fmt: skip
        done = await sign_in(c, site.codes[0])  # at the portal itself, with a backup code
        assert done.status_code == 303 and done.headers["location"] == "/portal/methods"
        r = await visit(c)
        assert r.status_code == 303 and r.headers["location"] == "/portal/confirm", r.text
        assert COOKIE not in r.headers.get("set-cookie", "")  # the site's cookie: not yet
        page = await c.get("/portal/confirm")
        assert "That site asks for another second step" in page.text
        r = await c.post("/portal/confirm", data={"csrf": csrf(page), "password": PASSWORD})
        assert r.status_code == 303 and r.headers["location"] == "/portal/second-factor"
        page = await c.get("/portal/second-factor")
        r = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": code_now()})
        assert r.status_code == 303 and r.headers["location"] == SITE, r.text
        assert r.headers["set-cookie"].startswith(COOKIE + "=v2.")
        # Signed in for the sites now: the next visit goes straight back.
        again = await visit(c)
        assert again.status_code == 303 and again.headers["location"] == SITE

    run(tmp_path, scenario, lambda site: with_forward_auth(site, tmp_path))


def test_a_portal_session_that_satisfies_the_sites_rule_goes_straight_back(
    tmp_path: Path,
) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        PolicyRules(site.store).add(Rule("sites-codes", channels=("forward-auth",),
                                         methods=("totp", "backup")))  # fmt: skip
        done = await sign_in(c, site.codes[0])
        assert done.status_code == 303
        r = await visit(c)
        assert r.status_code == 303 and r.headers["location"] == SITE, r.text
        assert r.headers["set-cookie"].startswith(COOKIE + "=v2.")

    run(tmp_path, scenario, lambda site: with_forward_auth(site, tmp_path))
