"""Names for one's methods and times in the browser's zone, through the portal app over a real
node in process (httpx's ASGI transport): a method renamed on its page shows that name on the
methods page and in the next sign-in's second step; a name that is not printable text, or
another person's method, is refused (the SDK: 422 and 404, never a 5xx); every time is a
``<time>`` element with its UTC moment."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from html import unescape
from pathlib import Path

import httpx
import pytest

from openmfa.errors import ConfigError
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.node.portal import SESSION
from openmfa.portal.app import create_app as create_portal
from openmfa.portal.config import load
from openmfa.sdk.app import create_app as create_node_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

PASSWORD = "correct horse"

Scenario = Callable[
    [httpx.AsyncClient, httpx.AsyncClient, NodeRuntime, dict[str, str]], Awaitable[None]
]


def run(tmp_path: Path, scenario: Scenario) -> None:
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    for name in ("alice", "bob"):
        accounts.add_user(name)
        set_password(store, accounts, name, PASSWORD)
    facts = {
        "code": (accounts.enroll("alice", "backup-codes").backup_codes or [""])[0],
        "app": accounts.enroll("alice", "totp", label="Authenticator app").method.id,
        "bobs": accounts.enroll("bob", "totp").method.id,
    }
    key = ApiKeys(store).create("portal1", "portal")
    (tmp_path / "portal.toml").write_text(
        f'[portal]\napi_key = "{key}"\nnodes = ["http://node"]\nsecure = "always"\n'
    )
    facts["key"] = key

    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            node_app = httpx.ASGITransport(app=create_node_app(node))
            portal = create_portal(load(tmp_path / "portal.toml"), transport=node_app)
            async with (
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=portal), base_url="https://p.test"
                ) as c,
                httpx.AsyncClient(transport=node_app, base_url="http://node") as n,
            ):
                await scenario(c, n, node, facts)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def second_step(c: httpx.AsyncClient) -> httpx.Response:
    page = await c.get("/portal/sign-in")
    r = await c.post(
        "/portal/sign-in", data={"csrf": csrf(page), "user": "alice", "password": PASSWORD}
    )
    assert r.status_code == 303 and r.headers["location"] == "/portal/second-factor", r.text
    return await c.get("/portal/second-factor")


def test_a_renamed_method_shows_its_name_on_the_page_and_in_the_sign_in(tmp_path: Path) -> None:
    async def scenario(
        c: httpx.AsyncClient, n: httpx.AsyncClient, node: NodeRuntime, facts: dict[str, str]
    ) -> None:
        step = await second_step(c)
        assert "Yours: Authenticator app, Backup codes" in unescape(step.text)
        r = await c.post("/portal/second-factor", data={"csrf": csrf(step), "code": facts["code"]})
        assert r.status_code == 303
        page = await c.get(f"/portal/methods/{facts['app']}/name")
        assert page.status_code == 200 and 'value="Authenticator app"' in page.text
        for bad in ("x" * 65, "two\nlines", "nul\x00"):
            again = await c.post(
                f"/portal/methods/{facts['app']}/name", data={"csrf": csrf(page), "label": bad}
            )
            assert again.status_code == 200 and "1 to 64 letters" in again.text
        r = await c.post(
            f"/portal/methods/{facts['app']}/name",
            data={"csrf": csrf(page), "label": "Work phone"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/portal/methods"
        listed = await c.get("/portal/methods")
        assert "Work phone" in listed.text and "The name was saved." in listed.text
        assert re.search(
            r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">[^<]+ UTC</time>', listed.text
        )
        assert "/static/times.js" in listed.text
        signs = await c.get("/portal/sign-ins")
        body = signs.text.split("<tbody", 1)[1].split("</tbody>", 1)[0]
        rows = re.findall(r"<tr role=\"row\">(.*?)</tr>", body, re.S)
        assert len(rows) >= 2 and all("This portal" in r for r in rows), signs.text
        assert all("Accepted" in r and "<time datetime=" in r for r in rows), signs.text
        # Bob's method through alice's page: as if it did not exist.
        r = await c.post(
            f"/portal/methods/{facts['bobs']}/name", data={"csrf": csrf(page), "label": "mine"}
        )
        assert r.status_code == 404
        gone = await c.get(f"/portal/methods/{facts['bobs']}/name")
        assert gone.status_code == 404
        # Signed out, the next sign-in's second step names it.
        await c.post("/portal/sign-out", data={"csrf": csrf(listed)})
        step = await second_step(c)
        assert "Yours: Work phone, Backup codes" in unescape(step.text)

    run(tmp_path, scenario)


def test_the_sdk_refuses_a_bad_name_or_anothers_method_below_500(tmp_path: Path) -> None:
    async def scenario(
        c: httpx.AsyncClient, n: httpx.AsyncClient, node: NodeRuntime, facts: dict[str, str]
    ) -> None:
        token, _ = node.portal.issue(SESSION, "alice", "portal1", time.time())
        headers = {"authorization": f"Bearer {facts['key']}", "x-openmfa-session": token}
        path = f"/v1/portal/me/methods/{facts['app']}/name"
        for label in ("x" * 65, "x" * 300, "a\x07b", "", " ", "\u202eevil"):
            r = await n.put(path, json={"label": label}, headers=headers)
            assert r.status_code == 422 and r.json()["code"] == "invalid_input", (label, r.text)
        for body in (b"{}", b'{"label": 5}', b'{"label": "a", "x": 1}', b"not json"):
            r = await n.put(path, content=body, headers=headers)
            assert 400 <= r.status_code < 500, (body, r.text)
        r = await n.put(
            f"/v1/portal/me/methods/{facts['bobs']}/name", json={"label": "mine"}, headers=headers
        )
        assert r.status_code == 404
        r = await n.put(
            path, json={"label": "Work phone"}, headers={"authorization": headers["authorization"]}
        )
        assert r.status_code == 401
        r = await n.put(path, json={"label": " Work phone "}, headers=headers)
        assert r.status_code == 200 and r.json()["label"] == "Work phone"
        bobs = await asyncio.to_thread(node.accounts.list_methods, "bob")
        assert bobs[0].label == ""

    run(tmp_path, scenario)


def test_the_themes_product_name_and_logo_on_every_page(tmp_path: Path) -> None:
    theme = tmp_path / "themes" / "Acme"
    (theme / "static").mkdir(parents=True)
    (theme / "static" / "acme.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (theme / "theme.toml").write_text('product_name = "Acme Sign-in"\nlogo = "acme.svg"\n')
    extra = f'theme = "Acme"\nthemes_dir = "{tmp_path / "themes"}"\n'
    (tmp_path / "portal.toml").write_text(f'[portal]\napi_key = "omfa_x_y"\n{extra}')

    async def go() -> tuple[str, str]:
        app = create_portal(load(tmp_path / "portal.toml"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://p.test") as c:
            page = (await c.get("/portal/sign-in")).text
            logo = re.search(
                r'<img class="logo" src="(/portal/static/acme\.svg\?v=[0-9a-f]{12})"', page
            )
            assert logo, page
            assert (await c.get(logo.group(1))).text.startswith("<svg")
            return page, logo.group(1)

    page, first = asyncio.run(go())
    assert '<span class="product">Acme Sign-in</span>' in page
    (theme / "static" / "acme.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>')
    assert asyncio.run(go())[1] != first  # a changed logo has a new address
    for bad in (
        'product_name = "a\\u0007b"',
        'logo = "../portal.toml"',
        'logo = "none.svg"',
        "x =",
    ):
        (theme / "theme.toml").write_text(bad + "\n")
        with pytest.raises(ConfigError, match=r"theme\.toml"):
            create_portal(load(tmp_path / "portal.toml"))
