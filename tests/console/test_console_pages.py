"""The console's pages without a node (in process, ASGI): its settings and their refusals, the
security headers and cookies over TLS, CSRF and Origin refusals, the idle timeout, an
unreachable node said as a sentence, and ``openmfa console default-config``."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from openmfa.cli import main
from openmfa.console.app import create_app
from openmfa.console.config import default_text, load
from openmfa.errors import ConfigError


def console(tmp_path: Path, extra: str = "", base: str = "https://c.test") -> httpx.AsyncClient:
    (tmp_path / "console.toml").write_text(
        f'[console]\nnodes = ["http://127.0.0.1:9"]\napi_key = "omfa_x_y"\n{extra}'
    )
    app = create_app(load(tmp_path / "console.toml"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('secure = "sometimes"', "is not one of"),
        ('languages = ["fr"]', "choose among"),
        ("recent_minutes = 0", "recent_minutes must be greater than 0"),
        ('session_key_file = "nothing.key"', "openssl rand -hex 32"),
        ('prefix = "/"', "must be a path like /console"),
    ],
)
def test_wrong_settings_are_refused_with_a_sentence(tmp_path: Path, extra: str, says: str) -> None:
    (tmp_path / "console.toml").write_text(f'[console]\napi_key = "omfa_x_y"\n{extra}\n')
    with pytest.raises(ConfigError, match=says):
        load(tmp_path / "console.toml")


def test_without_a_key_it_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "console.toml").write_text("[console]\n")
    with pytest.raises(ConfigError, match="apikey create console --scope console"):
        load(tmp_path / "console.toml")


def test_the_default_config_is_printed_and_a_missing_file_said() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["console", "default-config"])
    assert r.exit_code == 0 and r.output == default_text() and "[console]" in r.output
    r = runner.invoke(main, ["console", "serve", "--config", "/nonexistent/console.toml"])
    assert r.exit_code == 1 and "openmfa console default-config" in r.output


def test_over_tls_cookies_are_host_bound_headers_strict(tmp_path: Path) -> None:
    async def go() -> None:
        async with console(tmp_path) as c:
            r = await c.get("/console/sign-in")
            assert r.status_code == 200
            cookie = r.headers["set-cookie"]
            assert cookie.startswith("__Host-openmfa-console=") and "Secure" in cookie
            assert "HttpOnly" in cookie and "Path=/" in cookie and "SameSite=strict" in cookie
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            csp = r.headers["content-security-policy"]
            assert (
                "script-src 'self';" in csp and "unsafe" not in csp and "default-src 'none'" in csp
            )
            assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            assert "<script>" not in r.text and 'autocomplete="username"' in r.text
            assert (await c.get("/console/static/console.css")).status_code == 200
            assert (await c.get("/console/static/../config.py")).status_code == 404
            assert (await c.get("/console/static/nothing.css")).status_code == 404

    asyncio.run(go())


def test_forms_from_elsewhere_or_forged_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with console(tmp_path, 'secure = "never"\n', "http://c.test") as c:
            page = await c.get("/console/sign-in")
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert found
            form = {"csrf": found.group(1), "user": "a", "password": "b"}
            for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
                r = await c.post("/console/sign-in", data=form, headers=headers)
                assert r.status_code == 403, headers
            r = await c.post("/console/sign-in", data={**form, "csrf": "x" * 43})
            assert r.status_code == 403 and "did not come from this console" in r.text
            big = await c.post("/console/sign-in", data={**form, "password": "p" * 20_000})
            assert big.status_code == 413
            # The node cannot be reached: a sentence, not a stack trace.
            r = await c.post("/console/sign-in", data=form)
            assert r.status_code == 503 and "cannot be reached" in r.text
            nl = await c.post("/console/sign-in", data=form, headers={"accept-language": "nl"})
            assert nl.status_code == 503 and "niet bereikbaar" in nl.text
            # A cookie this console did not sign is a new session (and its forms' tokens).
            c.cookies.set("openmfa-console", "forged.value", domain="c.test")
            r = await c.post("/console/sign-in", data=form)
            assert r.status_code == 403

    asyncio.run(go())


async def _signed_in(c: httpx.AsyncClient) -> Any:
    """The console's one session, as if hana had just signed in (the node is not asked)."""
    await c.get("/console/sign-in")
    app = c._transport.app  # type: ignore[attr-defined]
    (s,) = app.state.console.sessions._by_id.values()
    s.token, s.token_expires, s.user = "omfp_x", time.time() + 3600, "hana"
    s.signed_in_at = time.time()
    return s


def test_an_idle_session_ends(tmp_path: Path) -> None:
    async def go() -> None:
        async with console(tmp_path, 'secure = "never"\n', "http://c.test") as c:
            s = await _signed_in(c)
            r = await c.get("/console/users")
            assert r.status_code != 303 or r.headers["location"] != "/console/sign-in"
            s.seen -= 16 * 60  # idle longer than idle_minutes (15)
            r = await c.get("/console/users")
            assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
            page = await c.get("/console/sign-in")
            assert "Your session has ended" in page.text

    asyncio.run(go())


def test_a_renewing_page_is_no_activity_and_no_file_is_read_signed_out(tmp_path: Path) -> None:
    """The farm page's renewal (``X-Console-Renew``) does not keep a session from its idle end;
    an upload from someone not signed in goes to the sign-in before its body is read."""

    async def go() -> None:
        async with console(tmp_path, 'secure = "never"\n', "http://c.test") as c:
            s = await _signed_in(c)
            s.seen -= 14 * 60
            before = s.seen
            await c.get("/console/farm", headers={"X-Console-Renew": "1"})
            assert s.seen == before  # not touched (the node is unreachable: a sentence)
            s.seen -= 2 * 60  # 16 minutes since the operator's last request
            r = await c.get("/console/farm", headers={"X-Console-Renew": "1"})
            assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"

        async with console(tmp_path, 'secure = "never"\n', "http://c.test") as c:
            r = await c.post(
                "/console/tokens/import",
                files={"file": ("t.csv", b"x" * 1024, "text/csv")},
                data={"csrf": "forged"},
            )
            assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"

    asyncio.run(go())
