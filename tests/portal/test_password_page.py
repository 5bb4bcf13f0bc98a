"""My password without a node (in process, ASGI): closed to a signed-out browser, and a form
without this portal's CSRF token is refused before anything is sent anywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.portal.test_pages import portal


def test_my_password_is_closed_signed_out_and_takes_no_foreign_form(tmp_path: Path) -> None:
    async def go() -> None:
        async with portal(tmp_path) as c:
            r = await c.get("/portal/password")
            assert r.status_code == 303 and r.headers["location"] == "/portal/sign-in"
            form = {"current": "an old one", "new": "a new long one", "again": "a new long one"}
            r = await c.post("/portal/password", data=form)
            assert r.status_code == 403 and "did not come from this portal" in r.text
            r = await c.post(
                "/portal/password", data={**form, "csrf": "x"}, headers={"Origin": "https://x"}
            )
            assert r.status_code == 403

    asyncio.run(go())
