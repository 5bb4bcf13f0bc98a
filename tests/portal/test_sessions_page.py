"""Where I am signed in, through the portal app over a real node in process: two browsers of
the same person, each listed (this one marked, address and browser shown); one ends the
other, which is sent to sign-in on its next page; a forged or foreign id and a form without
the CSRF token change nothing; the page in Dutch."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx

from openmfa.node.accounts import Accounts
from openmfa.node.passwords import set_password
from openmfa.portal.app import create_app as create_portal
from openmfa.sdk.app import create_app as create_node_app
from openmfa.wiring import NodeRuntime
from tests.node.oidc_helpers import oidc_config
from tests.portal.test_oidc import PASSWORD, Site, csrf, sign_in

FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def test_one_browser_ends_the_other(tmp_path: Path) -> None:
    site = Site(tmp_path, oidc_config())
    accounts = Accounts(site.store, site.config)
    accounts.add_user("bob")
    set_password(site.store, accounts, "bob", "pw-bob-1")
    bob_code = (accounts.enroll("bob", "backup-codes").backup_codes or [""])[0]

    async def main() -> None:
        node = NodeRuntime(site.store, site.config, radius_listen="")
        await node.start()
        try:
            portal = create_portal(
                site.portal_cfg, transport=httpx.ASGITransport(app=create_node_app(node))
            )
            transport = httpx.ASGITransport(app=portal)

            def browser(agent: str, lang: str = "en") -> httpx.AsyncClient:
                return httpx.AsyncClient(
                    transport=transport,
                    base_url="https://p.test",
                    headers={"user-agent": agent, "accept-language": lang},
                )

            async with browser(FIREFOX_ANDROID) as phone, browser(CHROME_WINDOWS, "nl") as desk:
                assert (await sign_in(phone, site.codes[0])).status_code == 303
                assert (await phone.get("/portal/methods")).status_code == 200  # reported
                assert (await sign_in(desk, site.codes[1])).status_code == 303
                page = await desk.get("/portal/sessions")
                assert page.status_code == 200, page.text
                text = page.text
                assert "Waar u bent aangemeld" in text and "Deze browser" in text
                assert "Chrome op Windows" in text and "Firefox op Android" in text
                assert text.count('action="/portal/sessions/') == 1  # not this browser's own
                assert 'href="/portal/sessions"' in text  # in the account navigation
                found = re.search(r'action="(/portal/sessions/([^/"]+)/end)"', text)
                assert found
                end, ref = found.group(1), found.group(2)
                token = csrf(page)
                # No CSRF token, a foreign site, a forged id: the phone stays signed in.
                assert (await desk.post(end, data={})).status_code == 403
                cross = await desk.post(
                    end, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
                )
                assert cross.status_code == 403
                forged = await desk.post("/portal/sessions/forged/end", data={"csrf": token})
                assert forged.status_code == 303
                assert "Die sessie was al beëindigd." in (await desk.get("/portal/sessions")).text
                mine = await phone.get("/portal/sessions")
                assert "This browser" in mine.text and "Chrome on Windows" in mine.text
                assert (await phone.get("/portal/methods")).status_code == 200
                # Bob cannot end Alice's phone by its id.
                async with browser(CHROME_WINDOWS) as bob:
                    page = await bob.get("/portal/sign-in")
                    r = await bob.post(
                        "/portal/sign-in",
                        data={"csrf": csrf(page), "user": "bob", "password": "pw-bob-1"},
                    )
                    page = await bob.get("/portal/second-factor")
                    r = await bob.post(
                        "/portal/second-factor", data={"csrf": csrf(page), "code": bob_code}
                    )
                    assert r.status_code == 303
                    page = await bob.get("/portal/sessions")
                    r = await bob.post(end, data={"csrf": csrf(page)})
                    assert r.status_code == 303
                assert (await phone.get("/portal/methods")).status_code == 200
                # Alice ends her phone from her desk: its next page is the sign-in.
                page = await desk.get("/portal/sessions")
                r = await desk.post(end, data={"csrf": csrf(page)})
                assert r.status_code == 303 and r.headers["location"] == "/portal/sessions"
                after = await desk.get("/portal/sessions")
                assert "Die sessie is beëindigd." in after.text and ref not in after.text
                gone = await phone.get("/portal/methods")
                assert gone.status_code == 303 and gone.headers["location"] == "/portal/sign-in"
                assert (await desk.get("/portal/methods")).status_code == 200
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        site.store.close()


def test_a_re_authentication_stays_this_browser(tmp_path: Path) -> None:
    """A re-authentication gives the browser a new node session: it is still one row, marked
    this browser, with no End button of its own."""
    site = Site(tmp_path, oidc_config())

    async def main() -> None:
        node = NodeRuntime(site.store, site.config, radius_listen="")
        await node.start()
        try:
            portal = create_portal(
                site.portal_cfg, transport=httpx.ASGITransport(app=create_node_app(node))
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=portal),
                base_url="https://p.test",
                headers={"user-agent": FIREFOX_ANDROID},
            ) as c:
                assert (await sign_in(c, site.codes[0])).status_code == 303
                before = await c.get("/portal/sessions")
                assert before.text.count("This browser") == 1
                page = await c.get("/portal/confirm")
                step = await c.post(
                    "/portal/confirm", data={"csrf": csrf(page), "password": PASSWORD}
                )
                assert step.status_code == 303, step.text
                page = await c.get("/portal/second-factor")
                done = await c.post(
                    "/portal/second-factor", data={"csrf": csrf(page), "code": site.codes[1]}
                )
                assert done.status_code == 303, done.text
                after = await c.get("/portal/sessions")
                assert after.text.count("This browser") == 1, after.text
                assert after.text.count('<tr role="row"') == 2  # the header and one browser
                assert 'action="/portal/sessions/' not in after.text
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        site.store.close()


def test_the_page_asks_the_node_once_and_an_older_node_twice(tmp_path: Path) -> None:
    """The page's one call carries the remembered browsers; a node that does not send them with
    the sessions (an earlier release) is asked for them apart, and the page is the same."""
    site = Site(tmp_path, oidc_config())
    asked: list[str] = []
    older = False

    async def main() -> None:
        node = NodeRuntime(site.store, site.config, radius_listen="")
        await node.start()
        node_app = create_node_app(node)

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            asked.append(scope.get("path", ""))
            if not (older and scope.get("path") == "/v1/portal/me/sessions"):
                return await node_app(scope, receive, send)
            answer: list[Any] = []

            async def keep(message: Any) -> None:
                answer.append(message)

            await node_app(scope, receive, keep)
            start, *body = answer
            page = json.loads(b"".join(m.get("body", b"") for m in body))
            page.pop("remembered", None)
            data = json.dumps(page).encode()
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", b"%d" % len(data))]})
            await send({"type": "http.response.body", "body": data})

        try:
            portal = create_portal(site.portal_cfg, transport=httpx.ASGITransport(app=recorded))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=portal), base_url="https://p.test"
            ) as c:
                nonlocal older
                assert (await sign_in(c, site.codes[0])).status_code == 303
                pages = []
                for older in (False, True):
                    asked.clear()
                    page = await c.get("/portal/sessions")
                    assert page.status_code == 200, page.text
                    pages.append(page.text.replace(csrf(page), ""))
                    mine = [p for p in asked if p.startswith("/v1/portal/me/")]
                    assert "/v1/portal/me/sessions" in mine
                    assert ("/v1/portal/me/remembered" in mine) is older
                assert "This browser" in pages[0] and pages[0] == pages[1]
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        site.store.close()
