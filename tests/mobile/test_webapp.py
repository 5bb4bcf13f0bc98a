"""The OpenMFA Authenticator web app as the mobile service serves it (in process, ASGI, no
node): the strict headers on every answer, the service worker's version, the manifest and its
icons, the translations from the portal's catalogue, revalidation, and nothing but the app's
own files — over a directory a test writes and over the packaged app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from babel.messages.pofile import read_po
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

import openmfa
from openmfa.errors import ConfigError
from openmfa.mobile.app import Standalone, create_app
from openmfa.mobile.config import load
from openmfa.mobile.webapp_routes import CSP, HEADERS, MARK, WebApp, brand_of, packaged
from openmfa.mobile.webapp_strings import MESSAGES

PO = Path(openmfa.__file__).parent / "portal" / "locale" / "nl" / "LC_MESSAGES" / "messages.po"
MANIFEST = {
    "name": "OpenMFA Authenticator",
    "start_url": "./",
    "scope": "./",
    "icons": [
        {"src": "icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "icon-512.png", "sizes": "512x512", "type": "image/png"},
    ],
}


def app_dir(tmp_path: Path) -> Path:
    d = tmp_path / "webapp"
    (d / "lib").mkdir(parents=True)
    (d / "index.html").write_text('<!doctype html><script type="module" src="app.js"></script>')
    (d / "app.js").write_text("import './lib/util.js';\n")
    (d / "lib" / "util.js").write_text("export const x = 1;\n")
    (d / "app.css").write_text("body { margin: 0 }\n")
    (d / "sw.js").write_text('const VERSION = "__OPENMFA_VERSION__";\n')
    (d / "manifest.webmanifest").write_text(json.dumps(MANIFEST))
    (d / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n192")
    (d / "icon-512.png").write_bytes(b"\x89PNG\r\n\x1a\n512")
    (d / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (d / "notes.py").write_text("SECRET = 1\n")  # not a kind of file the app has
    (d / ".hidden.js").write_text("x\n")
    return d


def run(app: ASGIApp, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://m.test") as c:
            await scenario(c)

    asyncio.run(go())


def mobile(webapp: WebApp | None = None, prefix: str = "/mobile") -> Starlette:
    return create_app(["http://node.test"], "omfa_x_y", prefix=prefix, webapp=webapp)


def secured(r: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.url, name)


async def check_app(c: httpx.AsyncClient, base: str = "/mobile") -> None:
    """What any complete app, served under ``base``, must answer."""
    index = await c.get(f"{base}/app/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert index.headers["content-security-policy"] == CSP
    secured(index)
    version = (await c.get(f"{base}/v1/info")).json()["version"]
    assert version.startswith(openmfa.__version__ + "-") and len(version.split("-")[-1]) == 8
    assert (await c.get(f"{base}/app/version.json")).json() == {"version": version}
    sw = await c.get(f"{base}/app/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert MARK.decode() not in sw.text and version in sw.text
    secured(sw)
    at = f"https://m.test{base}/app/manifest.webmanifest"
    found = await c.get(at)
    assert found.headers["content-type"] == "application/manifest+json"
    secured(found)
    manifest = found.json()
    assert manifest["name"]
    for key in ("start_url", "scope"):
        assert urljoin(at, manifest[key]).startswith(f"https://m.test{base}/app/"), key
    pngs = [i for i in manifest["icons"] if i["src"].endswith(".png")]
    assert pngs
    for icon in pngs:
        r = await c.get(urljoin(at, icon["src"]))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", icon
        secured(r)


def test_the_app_is_served_with_its_headers_version_manifest_and_icons(tmp_path: Path) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await check_app(c)
        for path, kind in (
            ("/mobile/app/app.js", "text/javascript"),
            ("/mobile/app/lib/util.js", "text/javascript"),
            ("/mobile/app/app.css", "text/css"),
            ("/mobile/app/icon.svg", "image/svg+xml"),
            ("/mobile/app/index.html", "text/html"),
        ):
            r = await c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
            assert r.headers["etag"]
            secured(r)
        moved = await c.get("/mobile/app")
        assert moved.status_code == 307
        assert urljoin("https://m.test/mobile/app", moved.headers["location"]).endswith(
            "/mobile/app/"
        )
        secured(moved)

    run(mobile(WebApp(app_dir(tmp_path))), scenario)


def test_the_packaged_app_is_complete_and_served() -> None:
    assert packaged().joinpath("index.html").is_file()
    web = WebApp()

    # What the page, the modules and the worker's offline shell name must all be served.
    named = {"./"}
    for name, asset in web.assets.items():
        text = asset.body.decode("utf-8", "replace")
        if name.endswith(".html"):
            named.update(re.findall(r'(?:src|href)="([^":]+)"', text))
        elif name.endswith(".js"):
            named.update(re.findall(r'(?:from|import)\s*"(\.[^"]+)"', text))
    shell = re.search(r"const SHELL = \[([^\]]*)\]", web.assets["sw.js"].body.decode())
    assert shell is not None
    named.update(re.findall(r'"([^"]+)"', shell.group(1)))

    async def scenario(c: httpx.AsyncClient) -> None:
        await check_app(c)
        for name in web.assets:
            r = await c.get(f"/mobile/app/{name}")
            assert r.status_code == 200, name
        for url in sorted(named):
            r = await c.get(urljoin("https://m.test/mobile/app/", url))
            assert r.status_code == 200, url

    run(mobile(web), scenario)


def test_a_changed_file_or_release_makes_a_new_service_worker(tmp_path: Path) -> None:
    d = app_dir(tmp_path)
    first = WebApp(d, release="1.0.0")
    assert first.version.startswith("1.0.0-")
    assert WebApp(d, release="1.0.0").version == first.version
    assert WebApp(d, release="1.0.1").assets["sw.js"] != first.assets["sw.js"]
    (d / "app.css").write_text("body { margin: 1px }\n")
    changed = WebApp(d, release="1.0.0")
    assert changed.version != first.version
    assert changed.assets["sw.js"].body != first.assets["sw.js"].body
    assert changed.assets["sw.js"].etag != first.assets["sw.js"].etag


def test_the_strings_come_from_the_portals_catalogue(tmp_path: Path) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        nl = await c.get("/mobile/app/strings/nl.json")
        assert nl.status_code == 200 and nl.headers["content-type"] == "application/json"
        secured(nl)
        assert nl.json()["Activation code"] == "Activeringscode"
        assert set(nl.json()) == set(MESSAGES)
        en = (await c.get("/mobile/app/strings/en.json")).json()
        assert en == {m: m for m in MESSAGES}
        assert (await c.get("/mobile/app/strings/fr.json")).status_code == 404

    run(mobile(WebApp(app_dir(tmp_path))), scenario)


def test_every_app_text_has_its_dutch_translation() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f, locale="nl")
    missing = []
    for msgid in MESSAGES:
        m = catalog.get(msgid)
        if m is None or m.fuzzy or not m.string:
            missing.append(msgid)
    where = "add to the portal's messages.po (see portal/babel.cfg)"
    assert missing == [], f"{where}: {missing!r}"
    assert len(set(MESSAGES)) == len(MESSAGES)


def test_nothing_but_the_apps_files_and_every_refusal_is_secured(tmp_path: Path) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        for path in (
            "/mobile/app/nothing.js",
            "/mobile/app/notes.py",
            "/mobile/app/.hidden.js",
            "/mobile/app/lib",
            "/mobile/app/lib/",
            "/mobile/app/%2e%2e/webapp.py",
            "/mobile/app/..%2fapp.py",
            "/mobile/app/lib/%2e%2e/%2e%2e/app.py",
            "/mobile/app/%2fetc%2fpasswd",
            "/mobile/app//etc/passwd",
            "/mobile/app/strings/",
            "/mobile/app/app.js%00.png",
        ):
            r = await c.get(path)
            assert r.status_code == 404, path
            assert r.json()["code"] == "not_found"
            secured(r)
        wrong = await c.post("/mobile/app/app.js", content=b"x")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
        secured(wrong)

    run(mobile(WebApp(app_dir(tmp_path))), scenario)


def test_revalidation_and_head(tmp_path: Path) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        for path in ("/mobile/app/", "/mobile/app/sw.js", "/mobile/app/strings/nl.json"):
            full = await c.get(path)
            etag = full.headers["etag"]
            assert full.headers["cache-control"] == "no-cache"
            for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):
                same = await c.get(path, headers={"If-None-Match": asked})
                assert same.status_code == 304 and same.content == b"", (path, asked)
                assert same.headers["etag"] == etag
                secured(same)
            other = await c.get(path, headers={"If-None-Match": '"other"'})
            assert other.status_code == 200 and other.content == full.content
            head = await c.head(path)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(full.content))
            assert head.headers["etag"] == etag
            secured(head)

    run(mobile(WebApp(app_dir(tmp_path))), scenario)


def test_served_by_the_standalone_service_and_inside_a_node(tmp_path: Path) -> None:
    """``openmfa mobile serve`` (``Standalone``) and ``openmfa serve`` with ``[mobile]
    enabled`` (the app built with prefix "" and mounted at the prefix, as ``server.py`` does)."""
    web = WebApp(app_dir(tmp_path))
    run(Standalone(mobile(web), "/mobile"), check_app)
    inside = Starlette(routes=[Mount("/mobile", app=mobile(web, prefix=""))])

    async def scenario(c: httpx.AsyncClient) -> None:
        await check_app(c)
        moved = await c.get("/mobile/app")
        assert moved.status_code == 307
        assert urljoin("https://m.test/mobile/app", moved.headers["location"]).endswith(
            "/mobile/app/"
        )

    run(inside, scenario)


def test_an_install_without_the_apps_files_still_serves_the_service(tmp_path: Path) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        assert (await c.get("/mobile/app/")).status_code == 404
        assert (await c.get("/mobile/v1/info")).json()["version"]

    run(mobile(WebApp(tmp_path / "none")), scenario)


def test_every_word_the_app_shows_is_listed_for_translation_and_nothing_else() -> None:
    """The strings the app's files look up — ``t("…")`` in the scripts (the service worker's
    too), ``data-t``/``data-t-label`` in the page — are exactly ``webapp_strings.MESSAGES``: a
    new sentence is not left untranslated, a removed one not left in the catalogue's list."""
    used: set[str] = set()
    for f in Path(str(packaged())).rglob("*"):
        if f.suffix == ".js":
            found = re.findall(r'\bt\(\s*"((?:[^"\\]|\\.)*)"', f.read_text())
            used.update(json.loads(f'"{s}"') for s in found)
        elif f.suffix == ".html":
            used.update(re.findall(r'\bdata-t(?:-label)?="([^"]*)"', f.read_text()))
    assert used, "no strings found: the pattern no longer matches the app's code"
    assert sorted(used - set(MESSAGES)) == [], "add these to webapp_strings.MESSAGES"
    assert sorted(set(MESSAGES) - used) == [], "no longer used by the app: remove them"


def test_an_administrators_own_copy_of_the_app(tmp_path: Path) -> None:
    """``app_dir`` in mobile.toml: relative to the file; a directory without index.html is a
    configuration error (said at start), not an app that answers 404."""
    d = app_dir(tmp_path)
    config = tmp_path / "mobile.toml"
    key = 'api_key = "omfa_x_y"\n'
    config.write_text(f'[mobile]\n{key}app_dir = "webapp"\n')
    assert load(config).app_dir == d
    config.write_text(f"[mobile]\n{key}")
    assert load(config).app_dir is None
    config.write_text(f'[mobile]\n{key}app_dir = "elsewhere"\n')
    with pytest.raises(ConfigError, match="app_dir"):
        load(config)


def test_the_organisations_name_and_logo_on_the_apps_screens(tmp_path: Path) -> None:
    """``[mobile] product_name`` and ``logo_file``: written into the page and the manifest,
    the logo served as ``brand-logo`` and kept by the service worker; a changed logo is a new
    version (so a new service worker: phones take it at their next open)."""
    logo = tmp_path / "acme.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\nacme")
    config = tmp_path / "mobile.toml"
    config.write_text(
        '[mobile]\napi_key = "omfa_x_y"\nproduct_name = "Acme <Sign>"\nlogo_file = "acme.png"\n'
    )
    cfg = load(config)
    assert (cfg.product_name, cfg.logo_file) == ("Acme <Sign>", logo)
    shipped = WebApp()
    assert shipped.assets["brand-logo"].body == shipped.assets["icon.svg"].body
    assert '"brand-logo"' in shipped.assets["sw.js"].body.decode()
    assert 'src="brand-logo"' in shipped.assets["index.html"].body.decode()
    app = WebApp(brand=brand_of(cfg.product_name, cfg.logo_file, "[mobile]"))
    page = app.assets["index.html"].body.decode()
    assert "<title>Acme &lt;Sign&gt;</title>" in page
    assert '<span class="product">Acme &lt;Sign&gt;</span>' in page
    assert json.loads(app.assets["manifest.webmanifest"].body)["name"] == "Acme <Sign>"
    assert app.version != shipped.version

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.get("/mobile/app/brand-logo")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == logo.read_bytes()
        secured(r)
        again = await c.get("/mobile/app/brand-logo", headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304

    run(mobile(app), scenario)
    logo.write_bytes(b"\x89PNG\r\n\x1a\nacme, redrawn")
    redrawn = WebApp(brand=brand_of(cfg.product_name, cfg.logo_file, "[mobile]"))
    assert redrawn.version != app.version
    assert redrawn.assets["sw.js"].body != app.assets["sw.js"].body
    for bad, match in (
        ('product_name = "a\\u0007b"', "product_name"),
        ('logo_file = "acme.gif"', "logo_file"),
        ('logo_file = "missing.svg"', "logo_file"),
    ):
        config.write_text(f'[mobile]\napi_key = "omfa_x_y"\n{bad}\n')
        cfg = load(config)
        with pytest.raises(ConfigError, match=match):
            brand_of(cfg.product_name, cfg.logo_file, "[mobile]")
