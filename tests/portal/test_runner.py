"""The page runner on its own (in process, no node): what a view's exceptions mean to the
person (a sentence and a status, never a trace), a signed-out person sent to the sign-in page,
a node session that ended ending the portal's own, and a form post taken only with this
session's CSRF token."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from openmfa.errors import Conflict, PrimaryUnavailable, Reauthenticate, Unauthorized, Unavailable
from openmfa.portal.config import load
from openmfa.portal.runner import Ctx, PageError, Portal, page

FAILURES: dict[str, Exception] = {
    "page": PageError("That is not a page of ours.", 418),
    "unavailable": Unavailable("no node"),
    "conflict": Conflict("the node says no"),
    "node-fault": PrimaryUnavailable("the directory is down"),
    "bug": RuntimeError("secret detail of a bug"),
    "reauth": Reauthenticate("sign in again"),
    "ended": Unauthorized("token ended"),
}


async def fail(ctx: Ctx) -> Response:
    raise FAILURES[ctx.request.path_params["kind"]]


async def echo(ctx: Ctx) -> Response:
    return PlainTextResponse(f"{ctx.session.user}:{ctx.field('word', 5)}")


def app(tmp_path: Path) -> tuple[Portal, httpx.AsyncClient]:
    (tmp_path / "portal.toml").write_text('[portal]\napi_key = "omfa_x_y"\nsecure = "never"\n')
    portal = Portal.from_config(load(tmp_path / "portal.toml"))
    views = [
        Route("/public/{kind}", page(portal, fail, public=True)),
        Route("/mine/{kind}", page(portal, fail)),
        Route("/echo", page(portal, echo, public=True), methods=["GET", "POST"]),
    ]
    web = Starlette(routes=[Mount("/portal", routes=views)])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://p.test")
    return portal, client


def test_a_views_failure_is_a_sentence_with_its_status_never_a_trace(tmp_path: Path) -> None:
    async def go() -> None:
        _, c = app(tmp_path)
        async with c:
            answers = {k: await c.get(f"/portal/public/{k}") for k in FAILURES}
        assert answers["page"].status_code == 418
        assert "That is not a page of ours." in answers["page"].text
        assert answers["unavailable"].status_code == 503
        assert "cannot be reached just now" in answers["unavailable"].text
        assert answers["conflict"].status_code == 409
        assert "the node says no" in answers["conflict"].text
        assert answers["node-fault"].status_code == 502  # the node's fault, not the portal's
        assert answers["bug"].status_code == 500
        assert "went wrong on our side" in answers["bug"].text
        assert "secret detail" not in answers["bug"].text
        assert "Traceback" not in answers["bug"].text
        for r in answers.values():
            assert r.headers["cache-control"] == "no-store"

    asyncio.run(go())


def test_the_signed_out_go_to_sign_in_and_an_ended_node_session_ends_this_one(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        portal, c = app(tmp_path)
        async with c:
            out = await c.get("/portal/mine/page")
            assert out.status_code == 303 and out.headers["location"] == "/portal/sign-in"
            s = portal.sessions.new()
            s.user, s.token, s.token_expires = "ann", "omfa_session_token", time.time() + 600
            c.cookies.clear()  # the first visit's session, not signed in
            c.cookies.set("openmfa-portal", s.id)
            reauth = await c.get("/portal/mine/reauth")
            assert reauth.status_code == 303 and reauth.headers["location"] == "/portal/confirm"
            assert s.next_page == "/mine/reauth" and s.notice == "reauth"
            assert portal.sessions.get(s.id) is s
            ended = await c.get("/portal/mine/ended")
            assert ended.status_code == 303 and ended.headers["location"] == "/portal/sign-in"
            assert portal.sessions.get(s.id) is None
            assert 'openmfa-portal=""' in ended.headers["set-cookie"]  # deleted

    asyncio.run(go())


def test_a_form_post_is_taken_only_with_this_sessions_csrf_token(tmp_path: Path) -> None:
    async def go() -> None:
        portal, c = app(tmp_path)
        async with c:
            first = await c.post("/portal/echo", data={"word": "hello"})
            assert first.status_code == 403  # a first visit has no token to send
            assert "did not come from this portal" in first.text
            s = portal.sessions.get(c.cookies["openmfa-portal"])
            assert s is not None
            wrong = await c.post("/portal/echo", data={"word": "hello", "csrf": "x" * 43})
            assert wrong.status_code == 403
            right = await c.post("/portal/echo", data={"word": "hello world", "csrf": s.csrf})
            assert right.status_code == 200 and right.text == ":hello"  # cut at its limit
            elsewhere = await c.post(
                "/portal/echo",
                data={"word": "hello", "csrf": s.csrf},
                headers={"Origin": "https://evil.test"},
            )
            assert elsewhere.status_code == 403
            assert re.fullmatch(r"[\w-]{20,}", s.csrf)

    asyncio.run(go())
