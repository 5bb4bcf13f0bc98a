"""MS-CHAPv2 checked by a real Active Directory: a Samba domain controller (tests/e2e/
directory_server.py, with its winbindd and ``ntlm auth = mschapv2-and-ntlmv2-only``) asked
through Samba's own ``ntlm_auth`` by ``openmfa.radius.ntlm.NtlmAuth``; the MS-CHAPv2 peer is
tests/radius/ms_chap_peer.py, independent of the server's code.

``ntlm_auth`` finds winbindd only at its compiled-in /run/samba/winbindd; the test's stand-in
program runs the real ``ntlm_auth`` in a mount namespace of its own where that directory is the
DC's pipe directory (nothing on the host changes)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest

from openmfa.errors import PrimaryUnavailable
from openmfa.radius import mschap as m
from openmfa.radius.ntlm import NtlmAuth, NtlmResult

from ..radius import ms_chap_peer as peer
from .directory_server import SambaDc, samba_dc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(t) for t in ("samba", "ntlm_auth", "unshare")),
        reason="needs root (network and mount namespaces), samba, ntlm_auth and unshare",
    ),
]

PASSWORD = "Al1ce-Passw0rd!"

_WRAPPER = """#!/bin/sh
exec unshare --mount -- sh -c '
if [ -d /run/samba ]; then mount -t tmpfs omfa-wb /run/samba
else mount -t tmpfs omfa-wb /run && mkdir /run/samba; fi &&
mkdir /run/samba/winbindd && mount --bind "$0" /run/samba/winbindd &&
exec ntlm_auth "$@"' "{wb_dir}" "$@"
"""


def ntlm_auth_for(dc: SambaDc, tmp_path: Path) -> Path:
    assert dc.winbindd_socket_dir is not None
    wrapper = tmp_path / "ntlm_auth"
    wrapper.write_text(_WRAPPER.format(wb_dir=dc.winbindd_socket_dir))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def exchange(user: str, password: str) -> tuple[bytes, m.Chap2Response]:
    """What a NAS sends: its MS-CHAP-Challenge and the peer's MS-CHAP2-Response, parsed."""
    challenge, value = peer.build_request(user, password, os.urandom(16), os.urandom(16), 7)
    return challenge, m.parse_chap2_response(value)


def test_ms_chapv2_against_a_samba_domain_controller(tmp_path: Path) -> None:
    with samba_dc(tmp_path / "samba", winbind=True) as dc:
        dc.tool("user", "create", "alice", PASSWORD)
        dc.tool("user", "create", "lee", "L33-Passw0rd!")
        dc.tool("user", "disable", "lee")
        auth = NtlmAuth(
            str(ntlm_auth_for(dc, tmp_path)),
            smb_conf=str(dc.workdir / "etc" / "smb.conf"),
            timeout=20,
        )

        # The right password: the hash hash, from which the server's answer verifies at the
        # peer, and MPPE keys that are the peer's own (its receive key is the server's send).
        for user in ("alice", "EXAMPLE\\alice"):
            challenge, r = exchange(user, PASSWORD)
            hash_hash = asyncio.run(auth.check(user, challenge, r))
            assert hash_hash == peer.hash_nt_password_hash(peer.nt_password_hash(PASSWORD))
            answer = m.authenticator_response(
                hash_hash, r.nt_response, r.peer_challenge, challenge, user.encode()
            )
            assert peer.check_authenticator_response(
                answer, PASSWORD, r.nt_response, r.peer_challenge, challenge, user
            )
            send, recv = m.mppe_keys_for_server(hash_hash, r.nt_response)
            assert (recv, send) == peer.peer_start_keys(PASSWORD, r.nt_response)

        # Refusals are values: a wrong password, an unknown user, a disabled account.
        challenge, r = exchange("alice", "wrong-password")
        assert asyncio.run(auth.verify("alice", challenge, r)) == NtlmResult(None, 691)
        challenge, r = exchange("nobody", PASSWORD)
        assert asyncio.run(auth.check("nobody", challenge, r)) is None
        challenge, r = exchange("lee", "L33-Passw0rd!")
        refused = asyncio.run(auth.verify("lee", challenge, r))
        assert refused.hash_hash is None and refused.error == 647, refused
        # A response replayed against another challenge is refused too.
        other, _ = exchange("alice", PASSWORD)
        challenge, r = exchange("alice", PASSWORD)
        assert asyncio.run(auth.check("alice", other, r)) is None

        # Several at once (a burst of VPN sign-ins) are each answered.
        async def burst() -> list[bytes | None]:
            runs = [exchange("alice", PASSWORD) for _ in range(4)]
            return list(await asyncio.gather(*(auth.check("alice", c, r) for c, r in runs)))

        assert all(h is not None for h in asyncio.run(burst()))

        # winbindd stopped (samba, its parent, ends with it): unavailable, not a wrong password.
        pid = int((dc.workdir / "run" / "winbindd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "winbindd did not stop"
            time.sleep(0.1)
        challenge, r = exchange("alice", PASSWORD)
        with pytest.raises(PrimaryUnavailable, match="is winbindd running"):
            asyncio.run(auth.check("alice", challenge, r))
