"""Forwarded headers (issue 29): ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only
from the proxies the configuration names — never by default, on every server (the node, the
portal and the mobile service of their own, and both mounted inside the node). uvicorn trusts
them from 127.0.0.1 unless told otherwise, which let anyone on the host reset the portal's
per-address limit and make it hand out ``Secure`` cookies and HSTS over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import cli, free_port, init, server, start_service, stop

pytestmark = pytest.mark.e2e


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, (page.status_code, page.text[:500])
    return found.group(1)


def _attempts(url: str, count: int, forwarded: Any) -> list[int]:
    """``count`` sign-in attempts (a wrong password), the i-th with the headers
    ``forwarded(i)``; their status codes."""
    statuses = []
    with httpx.Client(base_url=url) as h:
        page = h.get("/sign-in")
        assert page.status_code == 200, page.text[:500]
        token = _csrf(page)
        for i in range(count):
            answer = h.post(
                "/sign-in",
                data={"csrf": token, "user": "nobody", "password": "not the password"},
                headers=forwarded(i),
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                token = _csrf(answer)
    return statuses


def _each_its_own_address(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{i + 1}"}


def _cookies_and_hsts(url: str) -> tuple[list[str], str | None]:
    page = httpx.get(url + "/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200
    return page.headers.get_list("set-cookie"), page.headers.get("strict-transport-security")


def _forged_headers_ignored(url: str) -> None:
    statuses = _attempts(url, 30, _each_its_own_address)
    assert 429 in statuses, statuses  # the 21st: all 30 came from 127.0.0.1
    assert statuses[:20] == [200] * 20, statuses
    cookies, hsts = _cookies_and_hsts(url)
    assert cookies and not any("secure" in c.lower() for c in cookies), cookies
    assert hsts is None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A node (no portal inside) and a portal-scoped key for the portal hosts."""
    dd = tmp_path_factory.mktemp("forwarded") / "node"
    init(dd)
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv:
        yield dd, key, srv.url


@contextmanager
def _portal_host(folder: Path, key: str, node_url: str, extra: str = "") -> Iterator[str]:
    folder.mkdir()
    (folder / "portal.key").write_text(key + "\n")
    (folder / "portal.key").chmod(0o600)
    port = free_port()
    config = folder / "portal.toml"
    config.write_text(
        f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["{node_url}"]\n'
        f'api_key_file = "portal.key"\n{extra}'
    )
    url = f"http://127.0.0.1:{port}/portal"
    proc = start_service(
        ["portal", "serve", "--config", str(config)], url + "/healthz", folder / "portal.log"
    )
    try:
        yield url
    finally:
        stop(proc)


def test_a_portal_host_believes_no_forwarded_headers_by_default(node: Any, tmp_path: Path) -> None:
    _, key, node_url = node
    with _portal_host(tmp_path / "portal", key, node_url) as url:
        _forged_headers_ignored(url)


def test_a_portal_host_believes_the_proxy_it_names(node: Any, tmp_path: Path) -> None:
    _, key, node_url = node
    extra = 'trusted_proxies = ["127.0.0.1"]\n'
    with _portal_host(tmp_path / "portal", key, node_url, extra) as url:
        # Each attempt is counted against the address the proxy says it came from.
        statuses = _attempts(url, 30, _each_its_own_address)
        assert 429 not in statuses, statuses
        same = _attempts(url, 21, lambda i: {"X-Forwarded-For": "203.0.113.9"})
        assert same[-1] == 429 and 429 not in same[:20], same
        cookies, hsts = _cookies_and_hsts(url)
        assert any("secure" in c.lower() for c in cookies), cookies
        assert hsts is not None


def test_the_portal_inside_serve_believes_no_forwarded_headers(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    with (dd / "server.toml").open("a") as f:
        f.write("\n[portal]\nenabled = true\n")
    with server(dd) as srv:
        _forged_headers_ignored(srv.url + "/portal")


def test_the_portal_inside_serve_believes_the_proxy_it_names(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    (dd / "portal.toml").write_text('[portal]\ntrusted_proxies = ["127.0.0.1"]\n')
    with (dd / "server.toml").open("a") as f:
        f.write('\n[portal]\nenabled = true\nweb_config = "portal.toml"\n')
    with server(dd) as srv:
        statuses = _attempts(srv.url + "/portal", 30, _each_its_own_address)
        assert 429 not in statuses, statuses
        cookies, hsts = _cookies_and_hsts(srv.url + "/portal")
        assert any("secure" in c.lower() for c in cookies), cookies
        assert hsts is not None


def test_services_beside_the_nodes_run_uvicorn_without_proxy_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The mobile service and the portal of their own (``run_beside_nodes``): uvicorn is told
    not to rewrite the client's address and scheme from headers; the app decides (the portal
    from its ``trusted_proxies``; the mobile service uses neither)."""
    import uvicorn

    from openmfa.cli.common import run_beside_nodes

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    config = tmp_path / "mobile.toml"
    config.write_text("")
    run_beside_nodes(object(), "127.0.0.1", free_port(), "/mobile", config, "m.lock", "m.json")
    assert seen["proxy_headers"] is False
