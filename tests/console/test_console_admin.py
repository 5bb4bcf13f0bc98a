"""The console's API keys, token import and farm pages through a real node runtime (both
databases): an admin makes a key — its token shown once, and it works at the node — and revokes
it, but not the console's own; a helpdesk operator is refused by the node (403) on the API keys
page, through a forged POST and on an import; an admin imports RFC 6030's password-encrypted
PSKC file (a wrong password is a sentence that names no password) and the token is free in the
inventory; the farm page shows a node on its own, its tables renewable."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import select

from openmfa.config import Config
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.console.test_console_app import code_of, csrf, run, setup, sign_in

FIGURE7 = Path(__file__).resolve().parents[1] / "fixtures" / "pskc" / "rfc6030-figure7.xml"


def test_keys_imports_and_the_farm(store: Store, config: Config, tmp_path: Path) -> None:
    key, _ = setup(store, config)
    Groups(store, Accounts(store, config)).add("nora", "helpdesk-team")  # a code will do

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        # The helpdesk: the node refuses the page, a forged POST and an import.
        assert (await sign_in(c, "hana", code_of("hana"))).status_code == 303
        r = await c.get("/console/keys")
        assert r.status_code == 403 and "your role does not allow it" in r.text
        page = await c.get("/console/tokens")
        token = csrf(page)
        r = await c.post(
            "/console/keys/create", data={"csrf": token, "name": "x", "scope": "admin"}
        )
        assert r.status_code == 403 and "your role does not allow it" in r.text
        r = await c.post(
            "/console/tokens/import",
            data={"csrf": token, "password": "qwerty"},
            files={"file": ("figure7.xml", FIGURE7.read_bytes(), "application/xml")},
        )
        assert r.status_code == 403 and "your role does not allow it" in r.text
        farm = await c.get("/console/farm")  # every operator may look at the farm
        assert farm.status_code == 200 and 'id="renew" data-seconds="5"' in farm.text
        assert "is on its own" in farm.text and "<td>alone</td>" in farm.text
        await c.post("/console/sign-out", data={"csrf": token})

        # An admin.
        assert (await sign_in(c, "nora", code_of("nora"))).status_code == 303
        page = await c.get("/console/keys")
        assert page.status_code == 200 and "<td>console1</td>" in page.text
        r = await c.post(
            "/console/keys/create",
            data={"csrf": csrf(page), "name": "vpn-gw", "scope": "adapter", "days": "30"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/keys"
        page = await c.get("/console/keys")
        made = re.search(r'<code class="token">(omfa_[^<]+)</code>', page.text)
        assert made, page.text
        assert "omfa_" not in (await c.get("/console/keys")).text  # shown once
        r = await node.post(
            "/v1/authenticate",
            json={"user": "nora", "code": "000000"},
            headers={"authorization": f"Bearer {made.group(1)}"},
        )
        assert r.status_code == 200 and r.json()["accepted"] is False  # the key works
        for name, status, says in (
            ("vpn-gw", 303, ""),
            ("console1", 409, "the key this request came with"),
            ("nothing", 404, ""),
        ):
            r = await c.post("/console/keys/revoke", data={"csrf": csrf(page), "name": name})
            assert r.status_code == status and says in r.text, (name, r.text)
        r = await node.post(
            "/v1/authenticate",
            json={"user": "nora", "code": "000000"},
            headers={"authorization": f"Bearer {made.group(1)}"},
        )
        assert r.status_code == 401
        for bad in ({"name": "a b", "scope": "admin"}, {"name": "ok", "scope": "root"}):
            r = await c.post("/console/keys/create", data={"csrf": csrf(page), **bad})
            assert r.status_code == 400, bad

        page = await c.get("/console/tokens")
        for password, status, says in (
            ("qwertz", 422, "password or key is wrong"),
            ("qwerty", 200, "1 of the 1 tokens of figure7.xml were imported"),
            ("qwerty", 200, "0 of the 1 tokens of figure7.xml were imported"),
        ):
            r = await c.post(
                "/console/tokens/import",
                data={"csrf": csrf(page), "password": password},
                files={"file": ("figure7.xml", FIGURE7.read_bytes(), "application/xml")},
            )
            assert r.status_code == status and says in r.text, r.text
            assert "qwert" not in r.text
        assert "987654321" in r.text  # the second time: already there, kept
        r = await c.post("/console/tokens/import", data={"csrf": csrf(page)})
        assert r.status_code == 400 and "Choose a token file" in r.text
        free = await c.get("/console/tokens", params={"free": "1"})
        assert "<td>987654321</td>" in free.text

    run(store, config, tmp_path, key, scenario)
    with store.read() as conn:
        actions = [
            (a, cl)
            for a, cl in conn.execute(select(t.audit.c.action, t.audit.c.client))
            if a in ("apikey.create", "apikey.revoke", "token.import")
        ]
    assert ("apikey.create", "console1/nora") in actions
    assert ("apikey.revoke", "console1/nora") in actions
    assert ("token.import", "console1/nora") in actions
