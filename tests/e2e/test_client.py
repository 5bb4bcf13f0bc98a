"""The typed SDK client against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa.sdk.client import SdkClient, SdkError

from .helpers import cli, init, oathtool, server


def test_client_round_trip(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv, SdkClient(srv.url, token) as admin, SdkClient(srv.url, portal) as p:
        admin.create_user("DOM\\jo smith", email="jo@example.org")
        assert admin.get_user("DOM\\jo smith").email == "jo@example.org"
        assert [u.name for u in p.list_users()] == ["DOM\\jo smith"]
        enrolled = p.enroll("DOM\\jo smith", "totp", label="phone")
        assert enrolled.secret and enrolled.method.label == "phone"
        code = oathtool("--totp", "-b", enrolled.secret)
        d = p.authenticate("DOM\\jo smith", code, request_id="portal-1")
        assert d.accepted and d.request_id == "portal-1"
        assert not p.authenticate("DOM\\jo smith", code).accepted
        with pytest.raises(SdkError) as err:
            admin.create_user("a/b")
        assert err.value.status == 422 and "'/'" in err.value.message
        with pytest.raises(SdkError) as err:
            p.create_user("nope")
        assert err.value.status == 403 and err.value.code == "forbidden"
        assert admin.bypass("DOM\\jo smith", 30) > 0
        assert [m.kind for m in p.list_methods("DOM\\jo smith")] == ["totp"]
        p.remove_method("DOM\\jo smith", enrolled.method.id)
        assert any(e.request_id == "portal-1" for e in admin.audit(user="DOM\\jo smith"))
        assert admin.update_user("DOM\\jo smith", enabled=False).enabled is False
        admin.delete_user("DOM\\jo smith")
        with pytest.raises(SdkError) as err:
            admin.get_user("DOM\\jo smith")
        assert err.value.code == "not_found"
