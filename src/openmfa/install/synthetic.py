"""The upgrade's last proof: a throw-away user and TOTP method, authenticated on the release now
running, then deleted (``openmfa upgrade``'s verify step, and every rollback's)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable

import httpx

from ..core.totp import totp
from ..errors import InstallFailed, OpenMfaError


def authenticate(openmfa: Callable[..., str], url: str | None, say: Callable[[str], None]) -> None:
    """Check a new user's code over the SDK at ``url`` (or with ``openmfa verify`` when no node
    runs: ``url`` None). ``openmfa(*args)`` runs the new release's command on this node's
    data. A farm subordinate takes no writes of its own: there the check is read-only (the
    data file opens in the new release and lists its users; the node answered /readyz)."""
    if farm_role(openmfa) not in ("", "master", "shared"):
        openmfa("user", "list", "--json")
        say("    farm subordinate: checked read-only (its writes come from the master)")
        return
    name = f"openmfa-upgrade-check-{secrets.token_hex(4)}"
    openmfa("user", "add", name)
    try:
        out = openmfa("method", "add", name, "totp", "--no-qr")
        seed = next(ln.split()[1] for ln in out.splitlines() if ln.startswith("secret:"))
        secret = base64.b32decode(seed + "=" * (-len(seed) % 8))
        if url is not None:
            key = openmfa(
                "apikey", "create", name, "--scope", "adapter", "--expires-days", "0.01"
            ).strip()
            # The code of this moment, made only now: on a busy host the command above can take
            # longer than the one step of drift a code is allowed (it was made before it).
            code = totp(secret, time.time())
            try:
                r = httpx.post(
                    url + "/v1/authenticate",
                    timeout=10,
                    verify=False,  # noqa: S501
                    headers={"Authorization": f"Bearer {key}"},
                    json={"user": name, "code": code},
                )
                ok = r.status_code == 200 and r.json().get("accepted") is True
            finally:
                openmfa("apikey", "revoke", name)
        else:
            ok = "accepted" in openmfa("verify", name, totp(secret, time.time()))
        if not ok:
            raise InstallFailed("the synthetic authentication was not accepted")
        say("    synthetic authentication accepted")
    finally:
        openmfa("user", "delete", name)


def farm_role(openmfa: Callable[..., str]) -> str:
    """This node's farm role in the new release ("" when it is not in a farm)."""
    try:
        out = openmfa("farm", "status", "--json")
    except OpenMfaError:
        return ""
    try:
        return str(json.loads(out)["nodes"][0]["role"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
