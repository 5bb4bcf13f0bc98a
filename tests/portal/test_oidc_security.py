"""A security reviewer's cases for the portal's OpenID Connect provider: what an abandoned
authorization request leaves behind in the session (freshness for ``prompt=login`` and
``max_age``, the widened ``form-action``), the cookies of a cross-site POST, and the published
keys when the node fails. Through the portal app over a real node in process
(``tests.portal.test_oidc``'s site)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.portal.app import create_app as create_portal
from openmfa.sdk.app import create_app as create_node_app
from openmfa.wiring import NodeRuntime
from tests.node.oidc_helpers import oidc_config
from tests.portal.test_oidc import (
    APP,
    AUTHORIZE,
    PASSWORD,
    Site,
    ask,
    csrf,
    query,
    run,
    sign_in,
)


async def confirm(c: httpx.AsyncClient, code: str) -> httpx.Response:
    """The re-authentication as a browser goes through it; the answer to the second step."""
    page = await c.get("/portal/confirm")
    r = await c.post("/portal/confirm", data={"csrf": csrf(page), "password": PASSWORD})
    assert r.headers["location"] == "/portal/second-factor", r.text
    page = await c.get("/portal/second-factor")
    return await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": code})


def test_a_sign_in_made_for_another_request_does_not_answer_prompt_login(tmp_path: Path) -> None:
    """prompt=login asks again unless the sign-in was made for this very request: an abandoned
    request's time does not make a later sign-in (here, one to remove a method) count."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        totp = Accounts(site.store, site.config).enroll("alice", "totp").method.id
        first = await c.get(AUTHORIZE, params=ask(site.app.client_id, secrets.token_urlsafe(48)))
        done = await sign_in(c, site.codes[0])
        await c.get(done.headers["location"])  # the first request answered with a code
        # prompt=login: sent to confirm — and abandoned for the methods page.
        abandoned = ask(site.app.client_id, secrets.token_urlsafe(48), prompt="login")
        r = await c.get(AUTHORIZE, params=abandoned)
        assert first.status_code == 303 and r.headers["location"] == "/portal/confirm"
        page = await c.get("/portal/methods")
        r = await c.post(f"/portal/methods/{totp}/remove", data={"csrf": csrf(page)})
        assert r.headers["location"] == "/portal/confirm"
        back = await confirm(c, site.codes[1])
        assert back.headers["location"] == "/portal/methods"
        # A new request with prompt=login: confirm first, never a code at once.
        later = ask(site.app.client_id, secrets.token_urlsafe(48), prompt="login", state="st-2")
        r = await c.get(AUTHORIZE, params=later)
        assert r.status_code == 303 and r.headers["location"] == "/portal/confirm", r.headers.get(
            "location"
        )
        back = await confirm(c, site.codes[2])
        assert back.status_code == 303, back.text
        r = await c.get(back.headers["location"])
        got = query(r.headers["location"])
        assert r.headers["location"].startswith(APP + "?") and got["state"] == "st-2", got
        assert "code" in got

    run(tmp_path, scenario)


def test_the_widened_form_action_is_only_on_the_sign_in_of_a_request(tmp_path: Path) -> None:
    """The application's origin is in form-action on the pages of the sign-in for its
    request only: not on the methods page of a person who abandoned it, nor later."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        r = await c.get(AUTHORIZE, params=ask(site.app.client_id, secrets.token_urlsafe(48)))
        done = await sign_in(c, site.codes[0])
        await c.get(done.headers["location"])
        abandoned = ask(site.app.client_id, secrets.token_urlsafe(48), prompt="login")
        r = await c.get(AUTHORIZE, params=abandoned)
        assert r.headers["location"] == "/portal/confirm"
        page = await c.get("/portal/confirm")
        assert (
            "form-action 'self' https://app.example.org;" in page.headers["content-security-policy"]
        )
        page = await c.get("/portal/methods")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "app.example.org" not in csp and "form-action 'self';" in csp, csp
        # An hour on: the request is long given up; its sign-in pages are plain again.
        s = next(iter(site_sessions(c)))
        s.oidc_sent_at -= 3600
        page = await c.get("/portal/confirm")
        assert "app.example.org" not in page.headers["content-security-policy"]

    run(tmp_path, scenario)


def site_sessions(c: httpx.AsyncClient) -> list[Any]:
    """The portal's signed-in sessions (the app behind the client's transport)."""
    transport = c._transport
    assert isinstance(transport, httpx.ASGITransport)
    return [s for s in transport.app.state.sessions._by_id.values() if s.signed_in]  # type: ignore[attr-defined]


class Failing(httpx.AsyncBaseTransport):
    """A node that answers as the real one until ``fail`` says how it breaks: a 500 with the
    SDK's error body (``internal_error``, what a node's bug or broken database gives), a 503
    ``not_ready`` (a node starting), or no keys (a node whose keys are not there)."""

    def __init__(self, real: httpx.AsyncBaseTransport) -> None:
        self.real, self.fail = real, ""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.real.handle_async_request(request)
        if self.fail and request.url.path == "/v1/oidc/provider":
            await answer.aread()
            if self.fail == "no keys":
                body = json.loads(answer.content)
                return httpx.Response(200, json={**body, "jwks": {"keys": []}})
            status = 500 if self.fail == "internal_error" else 503
            return httpx.Response(status, json={"code": self.fail, "message": "broken"})
        return answer


def test_a_failing_node_never_makes_the_keys_vanish(tmp_path: Path) -> None:
    """The keys a portal read stay published (up to an hour) however the node fails, not only
    when it cannot be reached; keys the portal does not have are never cacheable."""
    site = Site(tmp_path, oidc_config())

    async def main() -> None:
        node = NodeRuntime(site.store, site.config, radius_listen="")
        await node.start()
        try:
            failing = Failing(httpx.ASGITransport(app=create_node_app(node)))
            app = create_portal(site.portal_cfg, transport=failing)
            portal = app.state.portal
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://p.test") as c:
                kept = (await c.get("/portal/oidc/jwks")).json()
                assert kept["keys"]
                for how in ("internal_error", "not_ready", "no keys"):
                    failing.fail = how
                    portal.provider = (portal.provider[0] - 120, portal.provider[1])
                    for path in ("/portal/oidc/jwks", "/portal/.well-known/openid-configuration"):
                        r = await c.get(path)
                        assert r.status_code == 200, (how, path, r.status_code, r.text)
                    assert (await c.get("/portal/oidc/jwks")).json() == kept, how
                # Nothing kept, the node fails: not cacheable, and not "not found".
                portal.provider = None
                for how in ("internal_error", "no keys"):
                    failing.fail = how
                    r = await c.get("/portal/oidc/jwks")
                    assert r.headers["cache-control"] == "no-store", (how, r.headers)
                    assert r.status_code in (200, 503) and "broken" not in r.text, (how, r.text)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        site.store.close()


def test_a_cross_site_post_leaves_the_person_s_session_alone(tmp_path: Path) -> None:
    """A form another site POSTs to /oidc/authorize comes without this portal's cookies
    (SameSite=Lax): its answer must not set a cookie of its own, which would replace the
    person's session in that browser (they would be asked to sign in again, or be signed
    out of the portal by any site). Entra's request is the one that starts a session."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        done = await sign_in(c, site.codes[0])
        assert done.status_code == 303
        good = ask(site.app.client_id, secrets.token_urlsafe(48))
        cross = {"sec-fetch-site": "cross-site", "origin": "https://app.example.org"}
        async with httpx.AsyncClient(transport=c._transport, base_url="https://p.test") as other:
            for form in (good, {**good, "client_id": "nobody"}, {**good, "scope": "x"}):
                r = await other.post(AUTHORIZE, data=form, headers=cross)
                assert r.status_code in (303, 400), r.text
                assert "set-cookie" not in r.headers, (form, r.headers)
                assert r.headers["cache-control"] == "no-store"
        # The browser's own cookie still names its session: the request gets its code.
        r = await c.post(AUTHORIZE, data=good, headers=cross)
        back = await c.get(r.headers["location"])
        assert "code" in query(back.headers["location"]), back.headers.get("location")

    run(tmp_path, scenario)


def test_a_token_request_is_counted_as_it_arrives(tmp_path: Path) -> None:
    """The token endpoint reads at most the portal's form limit, with or without a
    Content-Length (a chunked body has none), and a Content-Length that is no number is the
    sender's mistake: OAuth errors, never a 5xx."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"grant_type=authorization_code&code="
            for _ in range(40):
                yield b"c" * 1000

        form = {"Content-Type": "application/x-www-form-urlencoded"}
        big = await c.post("/portal/oidc/token", content=chunks(), headers=form)
        assert "content-length" not in big.request.headers
        assert big.status_code == 413 and big.json()["error"] == "invalid_request"
        bad = await c.post(
            "/portal/oidc/token", content=b"grant_type=x", headers={**form, "Content-Length": "1e3"}
        )
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"

    run(tmp_path, scenario)


def test_unknown_clients_from_one_address_are_audited_only_up_to_its_attempts(
    tmp_path: Path,
) -> None:
    """Each refused client check is an audit record at the node: an address sending unknown
    clients uses up its sign-in attempts (20 a minute), then is refused without the node being
    asked, so it cannot fill the audit log. A registered client is not counted."""

    async def scenario(site: Site, c: httpx.AsyncClient) -> None:
        good = ask(site.app.client_id, secrets.token_urlsafe(48))
        for _ in range(3):  # checks that pass are not attempts
            assert (await c.get(AUTHORIZE, params=good)).status_code == 303
        statuses = []
        for i in range(25):
            r = await c.get(AUTHORIZE, params={**good, "client_id": f"nobody-{i}"})
            statuses.append(r.status_code)
            assert "Traceback" not in r.text
        assert statuses[:20] == [400] * 20 and statuses[20:] == [429] * 5, statuses
        refused = [e for e in audit.query(site.store, limit=100) if e.action == "oidc.authorize"]
        assert len(refused) == 20 and {e.result for e in refused} == {"refused"}

    run(tmp_path, scenario)
