"""The identity providers' REST second factor (issue 14): LemonLDAP::NG posts ``{"user",
"code"}`` with the adapter key as HTTP Basic's password and reads ``{"result": ...}`` from a 2xx;
anything that is not a decision is an error status, so the identity provider fails closed.
A real node over HTTP; codes from oathtool."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from openmfa.sdk.client import SdkClient

from .helpers import cli, init, oathtool, server, wait_for

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"


def test_rest_second_factor_answers_result_and_fails_closed(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "dwho")
    cli(dd, "method", "add", "dwho", "totp", "--secret", SEED, "--no-qr")
    adapter = cli(dd, "apikey", "create", "lemonldap", "--scope", "adapter").stdout.strip()
    portal = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    with server(dd) as srv:
        url = srv.url + "/v1/adapter/verify"

        def verify(
            body: object, auth: tuple[str, str] | None = ("llng", adapter)
        ) -> httpx.Response:
            return httpx.post(url, json=body, auth=auth, timeout=10)

        # Wrong, unknown, empty or impossible: a decision (200), never a session.
        for body in (
            {"user": "dwho", "code": "000000"},
            {"user": "nobody", "code": "123456"},
            {"user": "dwho", "code": ""},
            {"user": "dwho", "code": "12\x0034"},
            {"user": "", "code": "123456"},
        ):
            r = verify(body)
            assert (r.status_code, r.json()) == (200, {"result": False}), (body, r.text)
        # The right code, with LemonLDAP::NG's own extra arguments beside it: true, once.
        code = oathtool("--totp", "-b", SEED)
        r = verify({"user": "dwho", "code": code, "uid": "dwho", "ip": "127.0.0.1"})
        assert (r.status_code, r.json()) == (200, {"result": True})
        assert verify({"user": "dwho", "code": code}).json() == {"result": False}  # replayed
        # Not a decision: the identity provider sees an error status and refuses the sign-in.
        assert verify({"user": "dwho", "code": code}, auth=None).status_code == 401
        assert (
            verify({"user": "dwho", "code": code}, auth=("llng", "omfa_wrong")).status_code == 401
        )
        assert verify({"user": "dwho", "code": code}, auth=("portal", portal)).status_code == 403
        bad = httpx.post(url, content=b"{not json", auth=("llng", adapter), timeout=10)
        assert bad.status_code == 400 and "JSON" in bad.json()["message"]
        for body in ([1, 2], {"user": 5, "code": "1"}, {"code": "123456"}, {"user": "x" * 300}):
            r = verify(body)
            assert r.status_code == 422 and "not valid" in r.json()["message"], r.text
        # The Python SDK speaks it too, with the key as a Bearer token.
        with SdkClient(srv.url, adapter) as sdk:
            assert sdk.adapter_verify("dwho", "000000") is False
        # A policy rule of the lemonldap channel: only backup codes there, so the app's right
        # code is refused (method_not_allowed, audited with the rule's name).
        cli(dd, "method", "add", "dwho", "backup-codes")
        cli(dd, "policy", "add", "llng-backup", "--channel", "lemonldap", "--methods", "backup")
        fresh = next_code(code)
        assert verify({"user": "dwho", "code": fresh}).json() == {"result": False}
        cli(dd, "policy", "remove", "llng-backup")
        assert verify({"user": "dwho", "code": fresh}).json() == {"result": True}
    rows = [json.loads(r) for r in cli(dd, "audit", "--user", "dwho", "--json").stdout.splitlines()]
    refused = [r for r in rows if r["reason"] == "method_not_allowed"]
    assert [r["detail"] for r in refused] == ["method totp not allowed by policy rule llng-backup"]
    audit = cli(dd, "audit", "--user", "dwho").stdout
    assert "lemonldap" in audit and "accepted" in audit and "rejected" in audit


def next_code(used: str) -> str:
    """A code of ``SEED`` other than ``used`` (the next 30-second step: a code is taken once)."""
    found: list[str] = []
    wait_for(lambda: found.append(oathtool("--totp", "-b", SEED)) or found[-1] != used, "next")
    return found[-1]
