"""The "Activate the mobile app" page against a node that answers what a test says (in
process, ASGI, the node an ``httpx.MockTransport``): the QR code, a link that opens the web app
on this phone, and the code and address for typing — in the person's language; the page then
notices the activation as before."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import msgspec
import pytest

from openmfa.portal.app import create_app
from openmfa.portal.config import load
from openmfa.portal.pages.enrol import app_link
from openmfa.sdk.models import (
    SDK_VERSIONS,
    ActivationCode,
    MethodView,
    PortalMe,
    PortalStep,
    UserView,
    VersionInfo,
)

URL = "https://phones.example/mobile"
CODE = "ABCD-EFGH-JKLM"


class FakeNode:
    """A node for one person, pat: signs in with a code; activation adds a push method."""

    def __init__(self, qr_text: str) -> None:
        self.qr_text = qr_text
        self.methods = [
            MethodView(id="m1", kind="totp", label="app", digits=6, period=30,
                       algorithm="SHA1", created_at=1.0)
        ]  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/version":
            answer: msgspec.Struct = VersionInfo(
                release="9.9.9", data_format=1, writes_format=1, reads_formats=[1],
                node="fake", sdk_versions=list(SDK_VERSIONS),
            )  # fmt: skip
        elif path == "/v1/portal/sign-in":
            answer = PortalStep(accepted=True, reason="ok", ticket="omfp_t", kinds=["totp"])
        elif path == "/v1/portal/second-factor":
            answer = PortalStep(accepted=True, reason="ok", token="omfs_s", expires_at=9e9)
        elif path == "/v1/portal/me":
            user = UserView(name="pat", display_name="Pat", email="", phone="", enabled=True,
                            created_at=1.0, updated_at=1.0)  # fmt: skip
            answer = PortalMe(user=user, methods=self.methods)
        elif path == "/v1/portal/me/devices/activation":
            answer = ActivationCode(
                user="pat", code=CODE, url=URL, expires_at=9e9, qr_text=self.qr_text
            )
        else:
            return httpx.Response(404, json={"code": "not_found", "message": path})
        return httpx.Response(200, content=msgspec.json.encode(answer))


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def signed_in(c: httpx.AsyncClient, lang: str) -> None:
    c.headers["Accept-Language"] = lang
    first = await c.get("/portal/sign-in")
    data = {"csrf": csrf(first), "user": "pat", "password": "pw"}
    assert (await c.post("/portal/sign-in", data=data)).status_code == 303
    page = await c.get("/portal/second-factor")
    done = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": "123456"})
    assert done.status_code == 303, done.text


@pytest.mark.parametrize(
    ("lang", "said"),
    [("en", "Open the app on this phone"), ("nl", "De app op deze telefoon openen")],
)
def test_the_page_shows_the_qr_code_the_link_and_the_code(
    tmp_path: Path, lang: str, said: str
) -> None:
    link = f"{URL}/app/#activate={CODE}"
    node = FakeNode(link)
    (tmp_path / "portal.toml").write_text(
        '[portal]\napi_key = "omfa_x_y"\nnodes = ["http://node.test"]\nsecure = "never"\n'
    )
    app = create_app(load(tmp_path / "portal.toml"), transport=httpx.MockTransport(node))

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p.test") as c:
            await signed_in(c, lang)
            methods = await c.get("/portal/methods")
            started = await c.post("/portal/mobile-app", data={"csrf": csrf(methods)})
            assert started.status_code == 303
            page = await c.get("/portal/mobile-app")
            assert page.status_code == 200, page.text
            assert 'src="data:image/png;base64,' in page.text
            found = re.search(r'<a [^>]*id="activation-link"[^>]*>([^<]+)</a>', page.text)
            assert found and found.group(1) == said, page.text
            assert f'href="{link}"' in found.group(0) and 'rel="noopener noreferrer"' in (
                found.group(0)
            )
            assert f'id="activation-code">{CODE}<' in page.text
            assert f'id="activation-url">{URL}<' in page.text
            if lang == "nl":
                assert "Scan deze QR-code met de camera van uw telefoon" in page.text
            # It still notices the activation: one more push method than before.
            status = await c.get("/portal/mobile-app/status")
            assert status.json()["activated"] is False
            node.methods.append(msgspec.structs.replace(node.methods[0], id="m2", kind="push"))
            status = await c.get("/portal/mobile-app/status")
            assert status.json()["activated"] is True

    asyncio.run(go())


def test_the_link_of_a_node_older_than_the_web_app_is_made_from_the_address() -> None:
    old = f"openmfa://activate?url=https%3A%2F%2Fphones.example%2Fmobile&code={CODE}"
    assert app_link(URL, CODE, old) == f"{URL}/app/#activate={CODE}"
    assert app_link(URL + "/", CODE, old) == f"{URL}/app/#activate={CODE}"
    new = f"{URL}/app/#activate={CODE}"
    assert app_link(URL, CODE, new) == new
