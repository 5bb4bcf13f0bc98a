"""The portal's sessions and settings: idle and absolute timeouts, renewal, the attempt limit,
and portal.toml mistakes said plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa.errors import ConfigError
from openmfa.portal.config import load
from openmfa.portal.sessions import Attempts, Sessions


def test_idle_and_absolute_timeouts_and_the_node_tokens_end() -> None:
    book = Sessions(idle_seconds=600, absolute_seconds=3600)
    s = book.new(now=1000.0)
    assert book.get(s.id, now=1500.0) is s  # seen: the idle clock starts again
    assert book.get(s.id, now=2099.0) is s
    assert book.get(s.id, now=2700.0) is None  # idle past 600 s
    s = book.new(now=0.0)
    for now in range(500, 3600, 500):
        assert book.get(s.id, now=float(now)) is s
    assert book.get(s.id, now=3601.0) is None  # absolute, however busy
    s = book.new(now=0.0)
    s.token, s.token_expires = "omfp_x", 100.0
    assert book.get(s.id, now=99.0) is s
    assert book.get(s.id, now=101.0) is None  # the node's session token ended


def test_renewal_gives_a_new_id_and_csrf_token_and_sign_out_everywhere() -> None:
    book = Sessions(600, 3600)
    s = book.new()
    old_id, old_csrf = s.id, s.csrf
    book.renew(s)
    assert s.id != old_id and s.csrf != old_csrf
    assert book.get(old_id) is None and book.get(s.id) is s
    s.user, s.token, s.token_expires = "ann", "omfp_t", 9e12
    other = book.new()
    other.user, other.token, other.token_expires = "ann", "omfp_u", 9e12
    assert book.drop_user("ann") == 2
    assert book.get(s.id) is None and book.get(other.id) is None


def test_attempts_per_minute_per_address() -> None:
    limit = Attempts(3)
    assert [limit.allow("10.0.0.1", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.allow("10.0.0.2", now=3)  # another address has its own
    assert limit.allow("10.0.0.1", now=61)  # a minute later


def test_portal_toml_mistakes_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "portal.toml"
    for text, said in (
        ('[portal]\napi_key = "k"\nprefix = "/"\n', "prefix"),
        ('[portal]\napi_key = "k"\nlanguages = ["fr"]\n', "languages: fr"),
        ('[portal]\napi_key = "k"\ntheme = "Corp"\n', "copy"),
        ('[portal]\napi_key = "k"\nsecure = "yes"\n', "secure"),
        ('[portal]\napi_key = "k"\nidle_minutes = 0\n', "idle_minutes"),
        ('[portal]\napi_key = "k"\nidle_minute = 5\n', "did you mean 'idle_minutes'"),
        ("[portal]\n", "needs an API key of scope portal"),
    ):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=said):
            load(cfg)
    key = tmp_path / "portal.key"
    key.write_text("omfa_x_y\n")
    key.chmod(0o644)
    cfg.write_text('[portal]\napi_key_file = "portal.key"\n')
    with pytest.raises(ConfigError, match="chmod 600"):
        load(cfg)
    key.chmod(0o600)
    loaded = load(cfg)
    assert loaded.api_key == "omfa_x_y" and loaded.prefix == "/portal"


def test_a_signed_in_session_is_carried_to_another_portal_host_sharing_the_key(
    tmp_path: Path,
) -> None:
    """With a shared session_key_file, a session signed in on one portal host is taken by
    another (or by the same host after a restart): the carry cookie, sealed, under the same id.
    Not with a tampered seal, another id, another key, or once signed out."""
    import asyncio
    import time

    import httpx

    from openmfa.portal.app import create_app
    from openmfa.portal.config import load

    def host(where: str, key: str) -> tuple[httpx.AsyncClient, Sessions]:
        d = tmp_path / where
        d.mkdir()
        (d / "session.key").write_text(key)
        (d / "session.key").chmod(0o600)
        (d / "portal.toml").write_text(
            '[portal]\napi_key = "omfa_x_y"\nsession_key_file = "session.key"\n'
        )
        app = create_app(load(d / "portal.toml"))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p.test")
        return client, app.state.sessions

    def jar(cookies: dict[str, str]) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}

    shared = "ab" * 32
    (one, sessions_one), (two, _), (other, _) = (
        host("one", shared),
        host("two", shared),
        host("three", "cd" * 32),
    )

    async def go() -> None:
        s = sessions_one.new()
        s.user, s.token, s.signed_in_at = "ann", "node-token", time.time()
        s.token_expires = time.time() + 600
        r = await one.get("/portal/", headers=jar({"openmfa-portal": s.id}))
        assert r.headers["location"].endswith("/methods")
        sealed = r.cookies["openmfa-portal-carry"]
        assert "node-token" not in sealed and "ann" not in sealed  # sealed, not just signed
        carry = {"openmfa-portal": s.id, "openmfa-portal-carry": sealed}
        r = await two.get("/portal/", headers=jar(carry))  # another host: still signed in
        assert r.headers["location"].endswith("/methods"), r.headers
        tampered = sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB")
        for cookies in (
            {**carry, "openmfa-portal-carry": tampered},
            {**carry, "openmfa-portal": "another-id"},
        ):
            fresh, _ = host(f"fresh-{len(cookies['openmfa-portal'])}-{tampered[-3:]}", shared)
            r = await fresh.get("/portal/", headers=jar(cookies))
            assert r.headers["location"].endswith("/sign-in"), cookies
        r = await other.get("/portal/", headers=jar(carry))  # another key
        assert r.headers["location"].endswith("/sign-in")
        for c in (one, two, other):
            await c.aclose()

    asyncio.run(go())
