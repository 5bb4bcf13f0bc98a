"""The User Portal as the OpenID Connect provider, through the portal app over a real node in
process (httpx's ASGI transport, the way ``openmfa serve`` mounts it): discovery and keys, an
application's code flow with PKCE through the portal's own sign-in, the token endpoint's
client authentication and errors, and Entra ID's external authentication method against a
stand-in tenant. ID tokens are checked against the published JWKS by code that did not make
them (``verify_independently``)."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from openmfa.config import Config
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.oidc_clients import ENTRA_REDIRECT, OidcClients
from openmfa.node.oidc_codes import s256
from openmfa.node.oidc_keys import OidcKeys
from openmfa.node.oidc_subjects import OidcSubjects
from openmfa.node.passwords import set_password
from openmfa.portal.app import create_app as create_portal
from openmfa.portal.config import load
from openmfa.sdk.app import create_app as create_node_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.node.oidc_helpers import oidc_config, verify_independently
from tests.node.test_oidc_eam import APP_ID, CLAIMS, OID, TENANT, StandInEntra

APP = "https://app.example.org/cb"
PASSWORD = "correct horse"
AUTHORIZE = "/portal/oidc/authorize"


class Site:
    """A node with alice (password, backup codes), an application client and a portal."""

    def __init__(self, tmp_path: Path, config: Config) -> None:
        self.store = Store.create(DataDir(tmp_path / "node"), config)
        self.config = config
        accounts = Accounts(self.store, config)
        accounts.add_user("alice", email="alice@example.org", display_name="Alice")
        set_password(self.store, accounts, "alice", PASSWORD)
        self.codes = accounts.enroll("alice", "backup-codes").backup_codes or []
        self.key = ApiKeys(self.store).create("portal1", "portal")
        self.app, self.secret = OidcClients(self.store).add("grafana", [APP])
        self.public, _ = OidcClients(self.store).add("spa", [APP], public=True)
        OidcKeys(self.store, config).ensure("RS256")  # as `openmfa oidc client add` does
        (tmp_path / "portal.toml").write_text(
            f'[portal]\napi_key = "{self.key}"\nnodes = ["http://node"]\nsecure = "always"\n'
        )
        self.portal_cfg = load(tmp_path / "portal.toml")


@asynccontextmanager
async def running(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    node = NodeRuntime(site.store, site.config, radius_listen="")
    await node.start()
    try:
        node_app = httpx.ASGITransport(app=create_node_app(node))
        portal = create_portal(site.portal_cfg, transport=node_app)
        transport = httpx.ASGITransport(app=portal)
        async with httpx.AsyncClient(transport=transport, base_url="https://p.test") as c:
            yield c
    finally:
        await node.stop()


def run(
    tmp_path: Path,
    scenario: Callable[[Site, httpx.AsyncClient], Awaitable[None]],
    prepare: Callable[[Site], None] = lambda site: None,
) -> None:
    site = Site(tmp_path, oidc_config())
    prepare(site)  # (before the portal starts: its configuration)

    async def main() -> None:
        async with running(site) as c:
            await scenario(site, c)

    try:
        asyncio.run(main())
    finally:
        site.store.close()


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def ask(client_id: str, verifier: str, **over: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "redirect_uri": APP,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **over,
    }


async def sign_in(c: httpx.AsyncClient, code: str, password: str = PASSWORD) -> httpx.Response:
    """The portal's sign-in as a browser goes through it; the answer to the second step."""
    page = await c.get("/portal/sign-in")
    r = await c.post(
        "/portal/sign-in", data={"csrf": csrf(page), "user": "alice", "password": password}
    )
    assert r.status_code == 303 and r.headers["location"] == "/portal/second-factor", r.text
    page = await c.get("/portal/second-factor")
    return await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": code})


def test_discovery_and_keys_are_published_cacheable(tmp_path: Path) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        r = await c.get("/portal/.well-known/openid-configuration")
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=60"
        doc = r.json()
        assert doc["issuer"] == "https://portal.example.org/portal"
        assert doc["token_endpoint"] == "https://portal.example.org/portal/oidc/token"
        assert doc["code_challenge_methods_supported"] == ["S256"]
        keys = await c.get("/portal/oidc/jwks")
        assert keys.status_code == 200 and keys.headers["cache-control"] == "public, max-age=60"
        assert keys.json()["keys"] and all("kid" in k for k in keys.json()["keys"])
        assert "set-cookie" not in keys.headers

    run(tmp_path, scenario)


def test_an_application_signs_a_person_in_with_code_and_pkce(tmp_path: Path) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        verifier = secrets.token_urlsafe(48)
        r = await c.get(AUTHORIZE, params=ask(site.app.client_id, verifier))
        assert r.status_code == 303 and r.headers["location"] == "/portal/sign-in"
        page = await c.get("/portal/sign-in")
        assert "Sign in to go on to grafana." in page.text
        # A wrong code never reaches the application; the right one does, with state.
        wrong = await sign_in(c, "00000000")
        assert wrong.status_code == 200 and "location" not in wrong.headers
        csp = wrong.headers["content-security-policy"]
        assert "form-action 'self' https://app.example.org;" in csp, csp
        done = await c.post(
            "/portal/second-factor", data={"csrf": csrf(wrong), "code": site.codes[0]}
        )
        assert done.status_code == 303 and done.headers["location"].startswith(AUTHORIZE + "?")
        back = await c.get(done.headers["location"])
        assert back.status_code == 303 and back.headers["location"].startswith(APP + "?")
        got = query(back.headers["location"])
        assert got["state"] == "st-1" and "error" not in got
        token_form = {
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": APP,
            "code_verifier": verifier,
        }
        basic = httpx.BasicAuth(site.app.client_id, site.secret)
        r = await c.post("/portal/oidc/token", data=token_form, auth=basic)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store" and "set-cookie" not in r.headers
        tokens = r.json()
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
        jwks = (await c.get("/portal/oidc/jwks")).json()
        claims = verify_independently(tokens["id_token"], jwks)
        assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["nonce"] == "n-1"
        assert claims["aud"] == site.app.client_id and claims["email"] == "alice@example.org"
        assert claims["preferred_username"] == "alice"
        # The code is spent: a replay is invalid_grant, and nothing is issued.
        again = await c.post("/portal/oidc/token", data=token_form, auth=basic)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert "id_token" not in again.text
        # Signed in: the next request is answered at once (prompt=none too).
        verifier2 = secrets.token_urlsafe(48)
        r = await c.get(AUTHORIZE, params=ask(site.app.client_id, verifier2, prompt="none"))
        assert r.status_code == 303 and "code" in query(r.headers["location"])
        post = {**token_form, "code": query(r.headers["location"])["code"]}
        post.update(code_verifier=verifier2, client_id=site.app.client_id)
        wrong_secret = await c.post("/portal/oidc/token", data={**post, "client_secret": "x" * 40})
        assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
        assert "www-authenticate" not in wrong_secret.headers  # not Basic: none asked for
        # client_secret_post works (the failed try above spent nothing).
        r = await c.post("/portal/oidc/token", data={**post, "client_secret": site.secret})
        assert r.status_code == 200, r.text
        # prompt=login asks the signed-in person to confirm it is them before a code.
        r = await c.get(AUTHORIZE, params=ask(site.app.client_id, verifier2, prompt="login"))
        assert r.status_code == 303 and r.headers["location"] == "/portal/confirm"
        page = await c.get("/portal/confirm")
        r = await c.post("/portal/confirm", data={"csrf": csrf(page), "password": PASSWORD})
        assert r.headers["location"] == "/portal/second-factor"
        page = await c.get("/portal/second-factor")
        r = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": site.codes[2]})
        assert r.status_code == 303 and r.headers["location"].startswith(AUTHORIZE + "?")
        back = await c.get(r.headers["location"])  # fresh now: the code, no second round
        assert "code" in query(back.headers["location"]), back.headers["location"]
        # max_age=0: a sign-in at once older than that asks again, once.
        r = await c.get(AUTHORIZE, params=ask(site.app.client_id, verifier2, max_age="0"))
        assert r.status_code == 303 and r.headers["location"] == "/portal/confirm"
        page = await c.get("/portal/confirm")
        r = await c.post("/portal/confirm", data={"csrf": csrf(page), "password": PASSWORD})
        page = await c.get("/portal/second-factor")
        r = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": site.codes[3]})
        back = await c.get(r.headers["location"])
        assert "code" in query(back.headers["location"]), back.headers["location"]

    run(tmp_path, scenario)


def test_a_public_client_with_pkce_alone(tmp_path: Path) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        verifier = secrets.token_urlsafe(48)
        r = await c.get(AUTHORIZE, params=ask(site.public.client_id, verifier))
        assert r.headers["location"] == "/portal/sign-in"
        done = await sign_in(c, site.codes[1])
        back = await c.get(done.headers["location"])
        code = query(back.headers["location"])["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP,
            "client_id": site.public.client_id,
            "code_verifier": "x" * 43,
        }
        bad = await c.post("/portal/oidc/token", data=form)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
        r = await c.post("/portal/oidc/token", data={**form, "code_verifier": verifier})
        assert r.status_code == 200 and r.json()["id_token"], r.text

    run(tmp_path, scenario)


def test_bad_requests_are_a_page_or_an_error_back_never_a_5xx(tmp_path: Path) -> None:
    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        verifier = secrets.token_urlsafe(48)
        good = ask(site.app.client_id, verifier)
        # Unknown client, unregistered redirect URI: a page, no redirect anywhere.
        for bad in (
            {**good, "client_id": "nobody"},
            {**good, "redirect_uri": APP + "/other"},
            {**good, "redirect_uri": "https://evil.example/cb"},
            {k: v for k, v in good.items() if k != "redirect_uri"},
        ):
            r = await c.get(AUTHORIZE, params=bad)
            assert r.status_code == 400 and "location" not in r.headers, bad
            assert "not from an application registered here" in r.text or "names no" in r.text
        # Duplicated parameters: a page (RFC 6749 §3.1).
        r = await c.get(AUTHORIZE + "?" + urlencode(good) + "&client_id=x")
        assert r.status_code == 400 and "location" not in r.headers
        # Other errors go back with error and state.
        for over, code in (
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"code_challenge": ""}, "invalid_request"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"scope": "profile"}, "invalid_scope"),
            ({"prompt": "none"}, "login_required"),
            ({"prompt": "none login"}, "invalid_request"),
            ({"max_age": "-1"}, "invalid_request"),
            ({"request": "x"}, "request_not_supported"),
        ):
            r = await c.get(AUTHORIZE, params={**good, **over})
            assert r.status_code == 303, (over, r.text)
            got = query(r.headers["location"])
            assert r.headers["location"].startswith(APP + "?")
            assert got["error"] == code and got["state"] == "st-1", (over, got)
            assert "code" not in got
        # A cross-site POSTed code request is the same request as a GET.
        r = await c.post(AUTHORIZE, data=good, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 303 and r.headers["location"].startswith(AUTHORIZE + "?")
        # The token endpoint: RFC 6749 §5.2 JSON for whatever comes.
        token = "/portal/oidc/token"
        basic = httpx.BasicAuth(site.app.client_id, site.secret)
        form = {"grant_type": "authorization_code", "code": "c", "redirect_uri": APP}
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"data": {}}, 400, "invalid_request"),
            ({"data": {**form, "grant_type": "password"}}, 400, "unsupported_grant_type"),
            ({"data": {**form, "code_verifier": "v" * 43}}, 400, "invalid_request"),
            ({"data": {**form, "code_verifier": "é" * 43}, "auth": basic}, 400, "invalid_request"),
            ({"data": {**form, "code_verifier": "v" * 43}, "auth": basic}, 400, "invalid_grant"),
            (
                {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
                400,
                "invalid_request",
            ),
            (
                {"data": {**form, "code_verifier": "v" * 43, "client_id": "nobody"}},
                401,
                "invalid_client",
            ),
            (
                {
                    "data": {**form, "code_verifier": "v" * 43},
                    "headers": {"authorization": "Basic !!!"},
                },
                401,
                "invalid_client",
            ),
            (
                {
                    "data": {**form, "code_verifier": "v" * 43, "client_secret": "s"},
                    "auth": basic,
                },
                400,
                "invalid_request",
            ),
        ]
        for kwargs, status, error in cases:
            r = await c.post(token, **kwargs)
            assert r.status_code == status and r.json()["error"] == error, (kwargs, r.text)
            assert r.headers["cache-control"] == "no-store"
        wrong = httpx.BasicAuth(site.app.client_id, "omfs_wrong")
        r = await c.post(token, data={**form, "code_verifier": "v" * 43}, auth=wrong)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")
        assert "omfs_wrong" not in r.text

    run(tmp_path, scenario)


def _form_post(page: httpx.Response) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form method="post" action="([^"]+)" data-autosubmit>', page.text)
    assert action, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    return unescape(action.group(1)), {k: unescape(v) for k, v in fields.items()}


def test_entra_s_external_authentication_method(tmp_path: Path) -> None:
    entra = StandInEntra()
    site = Site(tmp_path, oidc_config())
    eam, _ = OidcClients(site.store).add(
        "entra", [], kind="entra-eam", entra_tenant=TENANT, entra_client_id=APP_ID,
        jwks_uri=entra.jwks_uri,
    )  # fmt: skip
    OidcSubjects(site.store).map("alice", OID, TENANT)

    def request(**over: str) -> dict[str, str]:
        return {
            "client_id": eam.client_id,
            "redirect_uri": ENTRA_REDIRECT,
            "response_type": "id_token",
            "response_mode": "form_post",
            "scope": "openid",
            "id_token_hint": entra.hint(time.time()),
            "claims": CLAIMS,
            "nonce": "entra-nonce",
            "state": "entra-state",
            **over,
        }

    cross = {"sec-fetch-site": "cross-site", "origin": "https://login.microsoftonline.com"}

    async def scenario(c: httpx.AsyncClient) -> None:
        # Signed in to the portal already: that session stands in for nothing.
        page = await c.get("/portal/sign-in")
        await c.post(
            "/portal/sign-in", data={"csrf": csrf(page), "user": "alice", "password": PASSWORD}
        )
        r = await c.post(AUTHORIZE, data=request(), headers=cross)
        assert r.status_code == 303 and r.headers["location"] == "/portal/second-factor", r.text
        page = await c.get("/portal/second-factor")
        assert page.status_code == 200 and "Verification code" in page.text
        wrong = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": "00000000"})
        assert "location" not in wrong.headers
        done = await c.post(
            "/portal/second-factor", data={"csrf": csrf(page), "code": site.codes[0]}
        )
        assert done.status_code == 303 and done.headers["location"] == "/portal/oidc/eam/finish"
        answer = await c.get("/portal/oidc/eam/finish")
        assert answer.status_code == 200
        csp = answer.headers["content-security-policy"]
        assert "form-action 'self' https://login.microsoftonline.com;" in csp
        assert "script-src 'self'" in csp and "/static/form_post.js" in answer.text
        action, fields = _form_post(answer)
        assert action == ENTRA_REDIRECT and fields["state"] == "entra-state"
        jwks = (await c.get("/portal/oidc/jwks")).json()
        claims = verify_independently(fields["id_token"], jwks)
        assert claims["aud"] == eam.client_id and claims["sub"] == "entra-pairwise-sub-1"
        assert claims["nonce"] == "entra-nonce" and claims["amr"] == ["otp"]
        assert claims["acr"] == "possessionorinherence"
        # The session answered Entra: it is signed in to nothing here.
        assert (await c.get("/portal/methods")).headers["location"] == "/portal/sign-in"
        js = await c.get("/portal/static/form_post.js")
        assert js.status_code == 200 and "submit()" in js.text
        # Refusals go back to Entra as error + state; an unknown client is a page.
        for over, error in (
            ({"id_token_hint": entra.hint(time.time(), tid="other")}, "invalid_request"),
            ({"id_token_hint": "not.a.jwt"}, "invalid_request"),
            ({"id_token_hint": entra.hint(time.time(), oid="unknown-oid")}, "access_denied"),
            ({"response_mode": "query"}, "invalid_request"),
        ):
            r = await c.post(AUTHORIZE, data=request(**over), headers=cross)
            assert r.status_code == 200, (over, r.text)
            action, fields = _form_post(r)
            assert action == ENTRA_REDIRECT and fields["error"] == error, (over, fields)
            assert fields["state"] == "entra-state" and "id_token" not in fields
        r = await c.post(AUTHORIZE, data=request(client_id="nobody"), headers=cross)
        assert r.status_code == 400 and "data-autosubmit" not in r.text
        r = await c.post(AUTHORIZE, data=request(redirect_uri=APP), headers=cross)
        assert r.status_code == 400 and "data-autosubmit" not in r.text

    async def main() -> None:
        async with running(site) as c:
            await scenario(c)

    try:
        asyncio.run(main())
    finally:
        site.store.close()
        entra.close()


def test_basic_credentials_are_form_decoded() -> None:
    from openmfa.portal.pages.oidc_service import _basic

    raw = base64.b64encode(b"my%20client:a%3Ab+c").decode()
    assert _basic("Basic " + raw) == ("my client", "a:b c")
    assert _basic("Basic ???") == ("", "")
    assert _basic("Bearer x") is None


NASTY = ["", " ", "\x00", "é" * 50, "%ff", "a" * 5000, "openid\nprofile", "-1", "99999999999999"]


def test_no_input_to_the_provider_makes_a_5xx(tmp_path: Path) -> None:
    """Each parameter of each endpoint set to strange values: an answer below 500, always."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        good = ask(site.app.client_id, secrets.token_urlsafe(48))
        eam = {**good, "response_type": "id_token", "id_token_hint": "x.y.z", "claims": "{"}
        token = {
            "grant_type": "authorization_code",
            "code": "c",
            "redirect_uri": APP,
            "code_verifier": "v" * 43,
            "client_id": site.app.client_id,
            "client_secret": "s",
        }
        for base, send in ((good, "get"), (good, "post"), (eam, "post"), (token, "token")):
            for name in base:
                for value in NASTY:
                    p = {**base, name: value}
                    if send == "get":
                        r = await c.get(AUTHORIZE, params=p)
                    elif send == "post":
                        r = await c.post(AUTHORIZE, data=p)
                    else:
                        r = await c.post("/portal/oidc/token", data=p)
                    assert r.status_code < 500, (send, name, value[:20], r.text[:300])
        for header in ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic", "Digest x"):
            r = await c.post("/portal/oidc/token", data=token, headers={"authorization": header})
            assert r.status_code == 401, (header, r.text)

    run(tmp_path, scenario)
