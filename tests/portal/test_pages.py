"""The portal's pages without a node (in process, ASGI): security headers, cookies over TLS,
CSRF and Origin refusals, oversized forms, the theme's files and nothing outside them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from openmfa.portal.app import create_app
from openmfa.portal.config import load


def portal(tmp_path: Path, extra: str = "") -> httpx.AsyncClient:
    (tmp_path / "portal.toml").write_text(f'[portal]\napi_key = "omfa_x_y"\n{extra}')
    app = create_app(load(tmp_path / "portal.toml"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://p.test")


def test_over_tls_cookies_are_host_bound_and_secure_with_hsts(tmp_path: Path) -> None:
    async def go() -> None:
        async with portal(tmp_path) as c:
            r = await c.get("/portal/sign-in")
            assert r.status_code == 200
            cookie = r.headers["set-cookie"]
            assert cookie.startswith("__Host-openmfa-portal=") and "Secure" in cookie
            assert "HttpOnly" in cookie and "Path=/" in cookie
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            assert 'autocomplete="username"' in r.text and "<script>" not in r.text

    asyncio.run(go())


def test_forms_from_elsewhere_or_too_large_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with portal(tmp_path, 'secure = "never"\n') as c:
            page = await c.get("/portal/sign-in")
            assert "Secure" not in page.headers["set-cookie"]
            assert "strict-transport-security" not in page.headers
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert found
            form = {"csrf": found.group(1), "user": "a", "password": "b"}
            cross = await c.post(
                "/portal/sign-in", data=form, headers={"Sec-Fetch-Site": "cross-site"}
            )
            assert cross.status_code == 403
            null = await c.post("/portal/sign-in", data=form, headers={"Origin": "null"})
            assert null.status_code == 403
            wrong = await c.post("/portal/sign-in", data={**form, "csrf": "x" * 43})
            assert wrong.status_code == 403 and "did not come from this portal" in wrong.text
            big = await c.post("/portal/sign-in", data={**form, "password": "p" * 20_000})
            assert big.status_code == 413

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
                yield f"csrf={found.group(1)}&user=a&password=".encode()
                for _ in range(40):
                    yield b"p" * 1000

            chunked = await c.post(
                "/portal/sign-in",
                content=chunks(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert "content-length" not in chunked.request.headers
            assert chunked.status_code == 413 and "too large" in chunked.text
            bad = await c.post(
                "/portal/sign-in",
                content=b"user=a",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Content-Length": "6x",
                },
            )
            assert bad.status_code == 400 and "could not be read" in bad.text
            garbled = await c.post(
                "/portal/sign-in",
                content=b"\xff\xfe--garbage",
                headers={"Content-Type": "multipart/form-data; boundary=zz"},
            )
            assert garbled.status_code == 403 and "Traceback" not in garbled.text
            # Signed out, a signed-in page sends the browser to the sign-in page.
            r = await c.get("/portal/methods")
            assert r.status_code == 303 and r.headers["location"] == "/portal/sign-in"

    asyncio.run(go())


def test_the_themes_files_and_nothing_outside_them(tmp_path: Path) -> None:
    async def go() -> None:
        async with portal(tmp_path) as c:
            css = await c.get("/portal/static/theme.css")
            assert css.status_code == 200 and "--omfa-accent" in css.text
            for path in (
                "/portal/static/../templates/base.html",
                "/portal/static/%2e%2e/%2e%2e/portal/config.py",
                "/portal/static/nothing.css",
            ):
                assert (await c.get(path)).status_code == 404, path

    asyncio.run(go())


def test_metrics_count_pages_by_endpoint_and_status_outside_the_prefix(tmp_path: Path) -> None:
    """``/metrics`` sits beside the prefix (a proxy that publishes only the prefix keeps it
    internal) and counts each page by its name and status."""

    async def go() -> None:
        async with portal(tmp_path) as c:
            assert (await c.get("/portal/sign-in")).status_code == 200
            assert (await c.get("/portal/sign-in")).status_code == 200
            assert (await c.get("/portal/no-such-page")).status_code == 404
            assert (await c.get("/portal/metrics")).status_code == 404
            text = (await c.get("/metrics")).text
            assert 'openmfa_build_info{part="portal",release="' in text
            line = 'openmfa_http_requests_total{endpoint="sign_in",part="portal",status="200"} 2.0'
            assert line in text, text
            assert 'endpoint="none",part="portal",status="404"} 2.0' in text, text

    asyncio.run(go())
