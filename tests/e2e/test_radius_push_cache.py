"""RADIUS caching after an approved push, judged by radclient against a real ``openmfa serve``
and the reference authenticator as the phone (the ``push`` fixture of ``test_push``): a push
approved after the password starts the window of a ``--remember-minutes N --cache-uses M`` rule
exactly as a typed code does — through a push challenge's follow-up and through a held
request — so the VPN's next request from the same Calling-Station-Id passes with the password
alone and sends nothing to the phone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .helpers import OPENMFA, cli, wait_for
from .test_push import Push, finish, push, radclient, radclient_result, radclient_start

__all__ = ["push"]  # the module's fixture, shared

STATION = "02-00-00-00-00-42"


def _with_password(push: Push, user: str) -> dict[str, str]:
    cli(push.dd, "user", "add", user)
    subprocess.run(
        [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(push.dd)],
        input=f"{user} password\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    return {"User-Name": user, "User-Password": f"{user} password", "Calling-Station-Id": STATION}


def test_an_approved_push_challenge_starts_the_cache_window(push: Push, tmp_path: Path) -> None:
    sign_in = _with_password(push, "pia")
    phone = push.phone("pia", tmp_path)
    cli(push.dd, "policy", "add", "local-cache", "--channel", "radius", "--client", "gw-local",
        "--remember-minutes", "10", "--cache-uses", "1")  # fmt: skip
    try:
        kind, attrs = radclient(push, sign_in, source="127.0.0.5")
        assert kind == "Access-Challenge" and "Approve on your phone" in attrs["Reply-Message"]
        number = attrs["Reply-Message"].rsplit(": ", 1)[1]
        (request,) = phone.pending(wait=10)
        phone.run("approve", str(request["id"]), "--number", number)
        follow = {**sign_in, "User-Password": "", "State": attrs["State"]}
        assert radclient(push, follow, source="127.0.0.5", timeout=10)[0] == "Access-Accept"
        # The VPN re-authenticates: the password alone, nothing sent to the phone.
        assert radclient(push, sign_in, source="127.0.0.5")[0] == "Access-Accept"
        assert phone.pending() == []
        said = cli(push.dd, "audit", "--user", "pia", "--json").stdout
        assert "second factor cached by policy rule local-cache (use 1 of 1)" in said
        kind, attrs = radclient(push, sign_in, source="127.0.0.5")  # M = 1 used up
        assert kind == "Access-Challenge" and "Approve on your phone" in attrs["Reply-Message"]
    finally:
        cli(push.dd, "policy", "remove", "local-cache")


def test_an_approved_held_push_starts_the_cache_window(push: Push, tmp_path: Path) -> None:
    sign_in = _with_password(push, "quin")
    phone = push.phone("quin", tmp_path)
    cli(push.dd, "radius", "client", "add", "gw-local-hold", "--address", "127.0.0.6",
        "--secret", "gateway-secret-push", "--primary", "local", "--push", "hold")  # fmt: skip
    cli(push.dd, "policy", "add", "hold-cache", "--channel", "radius", "--client",
        "gw-local-hold", "--remember-minutes", "10", "--cache-uses", "2")  # fmt: skip
    try:
        probe = {"User-Name": "nobody", "User-Password": "x"}
        wait_for(  # the node reads its RADIUS clients again within seconds
            lambda: radclient(push, probe, source="127.0.0.6")[0] == "Access-Reject",
            "the new RADIUS client",
        )
        gateway = radclient_start(push, sign_in, source="127.0.0.6", timeout=30)
        try:
            wait_for(lambda: len(phone.pending()) == 1, "a push")
            (request,) = phone.pending()
            phone.run("approve", str(request["id"]))
            out = finish(gateway)
        finally:
            if gateway.poll() is None:
                gateway.kill()
        assert radclient_result(out)[0] == "Access-Accept", out
        assert radclient(push, sign_in, source="127.0.0.6", timeout=10)[0] == "Access-Accept"
        assert phone.pending() == []
    finally:
        cli(push.dd, "policy", "remove", "hold-cache")
        cli(push.dd, "radius", "client", "remove", "gw-local-hold")
