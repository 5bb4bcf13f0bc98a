"""The typed SDK clients against real servers: every route, typed errors, several nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openmfa.sdk import AsyncSdkClient, SdkClient
from openmfa.sdk.errors import Forbidden, InvalidInput, NotFound, Unauthorized, Unavailable

from .helpers import cli, free_port, init, oathtool, server


def test_client_round_trip(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, token) as admin, SdkClient(srv.url, portal) as p:
        assert admin.version().sdk_versions == [1] and admin.ready()
        admin.create_user("DOM\\jo smith", email="jo@example.org")
        assert admin.get_user("DOM\\jo smith").email == "jo@example.org"
        assert [u.name for u in admin.list_users()] == ["DOM\\jo smith"]
        assert [u.name for u in admin.find_users(" JO@example.org")] == ["DOM\\jo smith"]
        assert admin.find_users("someone@example.org") == []
        with pytest.raises(InvalidInput, match="1 to 255 characters"):
            admin.find_users("x" * 256)
        enrolled = admin.enroll("DOM\\jo smith", "totp", label="phone")
        assert enrolled.secret and enrolled.method.label == "phone"
        code = oathtool("--totp", "-b", enrolled.secret)
        d = p.authenticate("DOM\\jo smith", code, request_id="portal-1")
        assert d.accepted and d.request_id == "portal-1"
        assert not p.authenticate("DOM\\jo smith", code).accepted
        with pytest.raises(InvalidInput) as invalid:
            admin.create_user("a/b")
        assert invalid.value.http_status == 422 and "'/'" in invalid.value.message
        assert invalid.value.request_id  # the node's id for it, as in its log
        for not_the_portals in (
            lambda: p.create_user("nope"),
            lambda: p.list_users(),
            lambda: p.find_users("jo@example.org"),
        ):
            with pytest.raises(Forbidden):  # a portal key checks codes, nothing more
                not_the_portals()
        assert admin.bypass("DOM\\jo smith", 30) > 0
        assert [m.kind for m in admin.list_methods("DOM\\jo smith")] == ["totp"]
        hotp = admin.enroll("DOM\\jo smith", "hotp", label="token")
        assert hotp.secret is not None
        first, second = (oathtool("--hotp", "-b", "-c", str(c), hotp.secret) for c in (20, 21))
        assert admin.resync("DOM\\jo smith", hotp.method.id, first, second) is True
        admin.remove_method("DOM\\jo smith", enrolled.method.id)
        assert any(e.request_id == "portal-1" for e in admin.audit(user="DOM\\jo smith"))
        assert admin.update_user("DOM\\jo smith", enabled=False).enabled is False
        assert admin.unlock_user("DOM\\jo smith").failures == 0
        assert admin.radius_stats().enabled is False
        said = admin.export_user("DOM\\jo smith")
        assert said.user.email == "jo@example.org" and [m.kind for m in said.methods] == ["hotp"]
        assert any(e.request_id == "portal-1" for e in said.audit)
        with pytest.raises(Forbidden):
            p.export_user("DOM\\jo smith")
        pseudonym = admin.erase_user("DOM\\jo smith")
        with pytest.raises(NotFound):
            admin.get_user("DOM\\jo smith")
        assert admin.audit(user="DOM\\jo smith") == []
        assert any(e.request_id == "portal-1" for e in admin.audit(user=pseudonym))
        with pytest.raises(NotFound):
            admin.erase_user("DOM\\jo smith")
        admin.create_user("DOM\\jo smith")
        admin.delete_user("DOM\\jo smith")
        with pytest.raises(NotFound):
            admin.get_user("DOM\\jo smith")
        with pytest.raises(Unauthorized), SdkClient(srv.url, "omfa_bogus_key") as bad:
            bad.list_users()


def test_async_client_and_failover_between_nodes(tmp_path: Path) -> None:
    """Given two URLs of which the first has no node, reads and authentications go to the
    second; a list of dead nodes is a clear Unavailable."""
    dd = tmp_path / "node"
    token = init(dd)
    dead = f"http://127.0.0.1:{free_port()}"
    with server(dd) as srv:

        async def scenario() -> None:
            async with AsyncSdkClient([dead, srv.url], token) as sdk:
                await sdk.create_user("amy")  # a write: the dead node refused the connection
                enrolled = await sdk.enroll("amy", "totp")
                assert enrolled.secret is not None
                code = oathtool("--totp", "-b", enrolled.secret)
                assert (await sdk.authenticate("amy", code)).accepted
                assert [u.name for u in await sdk.list_users()] == ["amy"]
            async with AsyncSdkClient([dead], token) as nowhere:
                with pytest.raises(Unavailable) as err:
                    await nowhere.get_user("amy")
                assert dead in err.value.message

        asyncio.run(scenario())
