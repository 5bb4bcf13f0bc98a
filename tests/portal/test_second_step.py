"""The second step's page against a node that answers what a test says (in process, ASGI, the
node an ``httpx.MockTransport``): every refusal of a push is a sentence on the page, in the
person's language, never a 5xx; the push button is there only for a person with the mobile
app; a refusal that ends the sign-in sends the person back to the start."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from openmfa.portal.app import create_app
from openmfa.portal.config import load
from openmfa.sdk.models import SDK_VERSIONS, VersionInfo

PUSH_BUTTON = "Send a push to my phone"


class FakeNode:
    """The node's answers: the first step's ``kinds``, and what a push is answered."""

    def __init__(self, kinds: list[str] | None, push: str = "push_unavailable") -> None:
        self.kinds = kinds
        self.push = push
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.asked.append(path)
        if path == "/version":
            info = VersionInfo(
                release="9.9.9",
                data_format=1,
                writes_format=1,
                reads_formats=[1],
                node="fake",
                sdk_versions=list(SDK_VERSIONS),
            )
            return httpx.Response(200, content=msgspec.json.encode(info))
        if path == "/v1/portal/sign-in":
            first: dict[str, Any] = {
                "accepted": True, "reason": "ok", "ticket": "omfp_t", "expires_at": 9e9
            }  # fmt: skip
            if self.kinds is not None:  # a node older than the field leaves it out
                first["kinds"] = self.kinds
            return httpx.Response(200, json=first)
        if path == "/v1/portal/passkey/options":  # no passkey
            return httpx.Response(422, json={"code": "invalid_input", "message": "no passkey"})
        if path == "/v1/portal/second-factor":
            body: dict[str, Any] = json.loads(request.content)
            reason = self.push if body.get("method") == "push" else "wrong_code"
            return httpx.Response(200, json={"accepted": False, "reason": reason})
        return httpx.Response(404, json={"code": "not_found", "message": path})


def portal(tmp_path: Path, node: FakeNode) -> httpx.AsyncClient:
    (tmp_path / "portal.toml").write_text(
        '[portal]\napi_key = "omfa_x_y"\nnodes = ["http://node.test"]\nsecure = "never"\n'
        "attempts_per_minute = 1000\n"
    )
    app = create_app(load(tmp_path / "portal.toml"), transport=httpx.MockTransport(node))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p.test")


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def second_step(c: httpx.AsyncClient, lang: str = "en") -> httpx.Response:
    c.headers["Accept-Language"] = lang
    first = await c.get("/portal/sign-in")
    step = await c.post(
        "/portal/sign-in", data={"csrf": csrf(first), "user": "pat", "password": "pw"}
    )
    assert step.status_code == 303 and step.headers["location"] == "/portal/second-factor"
    page = await c.get("/portal/second-factor")
    assert page.status_code == 200, page.text
    return page


@pytest.mark.parametrize(
    ("reason", "lang", "said"),
    [
        ("push_unavailable", "en", "Push cannot be sent just now"),
        ("push_unavailable", "nl", "Er kan nu geen pushmelding worden verstuurd"),
        ("push_limited", "en", "Too many pushes just now"),
        ("push_limited", "nl", "Te veel pushmeldingen"),
        ("push_blocked", "en", "Push is blocked for your account"),
        ("push_blocked", "nl", "Pushmeldingen zijn voor uw account geblokkeerd"),
        ("no_method", "en", "You have no mobile app activated"),
        ("no_method", "nl", "U hebt geen mobiele app geactiveerd"),
        ("malformed", "en", "You have no mobile app activated"),  # "push" taken for a code
        ("something_new", "en", "The sign-in was refused."),
    ],
)
def test_every_refused_push_is_a_sentence_on_the_page(
    tmp_path: Path, reason: str, lang: str, said: str
) -> None:
    async def go() -> None:
        async with portal(tmp_path, FakeNode(["totp", "push"], push=reason)) as c:
            page = await second_step(c, lang)
            refused = await c.post("/portal/push", data={"csrf": csrf(page)})
            assert refused.status_code == 200, refused.text
            assert said in refused.text, refused.text
            assert 'role="alert"' in refused.text and 'name="code"' in refused.text

    asyncio.run(go())


def test_a_refusal_that_ends_the_sign_in_sends_the_person_to_the_start(tmp_path: Path) -> None:
    async def go() -> None:
        async with portal(tmp_path, FakeNode(["totp", "push"], push="locked")) as c:
            page = await second_step(c)
            refused = await c.post("/portal/push", data={"csrf": csrf(page)})
            assert refused.status_code == 200, refused.text
            assert "Your account is locked" in refused.text
            assert 'action="/portal/sign-in"' in refused.text
            gone = await c.get("/portal/second-factor")
            assert gone.headers["location"] == "/portal/sign-in"

    asyncio.run(go())


@pytest.mark.parametrize(
    ("kinds", "offered"),
    [
        (["totp"], False),
        (["totp", "backup-codes", "passkey"], False),
        (["push"], True),
        (["totp", "push"], True),
        (None, True),  # a node that does not say (older than the field): as before
    ],
)
def test_the_push_button_only_for_a_person_with_the_mobile_app(
    tmp_path: Path, kinds: list[str] | None, offered: bool
) -> None:
    async def go() -> None:
        node = FakeNode(kinds)
        async with portal(tmp_path, node) as c:
            page = await second_step(c)
            assert (PUSH_BUTTON in page.text) is offered
            assert ('action="/portal/push"' in page.text) is offered
            wrong = await c.post("/portal/second-factor", data={"csrf": csrf(page), "code": "1"})
            assert wrong.status_code == 200 and (PUSH_BUTTON in wrong.text) is offered
            # Asked for all the same (an old page): said on the page; without the app, the
            # node is not asked (a push it cannot send would count as a wrong code).
            node.asked.clear()
            pushed = await c.post("/portal/push", data={"csrf": csrf(wrong)})
            assert pushed.status_code == 200, pushed.text
            assert ("/v1/portal/second-factor" in node.asked) is offered
            if not offered:
                assert "You have no mobile app activated" in pushed.text

    asyncio.run(go())
