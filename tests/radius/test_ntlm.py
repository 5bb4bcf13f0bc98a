"""``NtlmAuth`` with stand-in ``ntlm_auth`` programs (small shell scripts): the command line it
runs (nothing of the request on it) and the helper-protocol request it writes on standard
input, how it reads each kind of answer, and that a broken backend is never a wrong password.
The real thing, against a Samba domain controller, is tests/e2e/test_radius_ntlm.py."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from openmfa.errors import PrimaryUnavailable
from openmfa.radius import mschap as m
from openmfa.radius.ntlm import NtlmAuth, NtlmResult, split_domain, valid_user_name

from . import ms_chap_peer as peer

AUTH = bytes(range(16))
PEER = bytes(range(16, 32))
HASH_HASH = peer.hash_nt_password_hash(peer.nt_password_hash("pw"))


def response(user: str = "alice") -> m.Chap2Response:
    return m.parse_chap2_response(peer.build_request(user, "pw", AUTH, PEER, 5)[1])


def fake(tmp_path: Path, body: str) -> Path:
    """An executable that records its arguments (one a line) and its standard input, then runs
    ``body``."""
    script = tmp_path / "ntlm_auth"
    script.write_text(
        f'#!/bin/sh\necho $$ > {tmp_path}/pid\nprintf "%s\\n" "$@" > {tmp_path}/argv\n'
        f"cat > {tmp_path}/stdin\n{body}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def said(*lines: str) -> str:
    """A shell command printing ntlm_auth's helper-protocol answer."""
    return "printf '" + "\\n".join([*lines, ".", ""]) + "'"


YES = said("Authenticated: Yes", f"User-Session-Key: {HASH_HASH.hex().upper()}")


def run(auth: NtlmAuth, user: str = "alice", r: m.Chap2Response | None = None) -> NtlmResult:
    return asyncio.run(auth.verify(user, AUTH, r or response(user)))


def test_accepted_reads_the_session_key_and_nothing_of_the_request_is_on_the_command_line(
    tmp_path: Path,
) -> None:
    script = fake(tmp_path, YES)
    auth = NtlmAuth(str(script), domain="EXAMPLE", smb_conf="/etc/x/smb.conf")
    r = response("EXAMPLE\\alice")
    assert asyncio.run(auth.check("EXAMPLE\\alice", AUTH, r)) == HASH_HASH
    challenge = m.challenge_hash(PEER, AUTH, b"alice")
    assert (tmp_path / "argv").read_text().splitlines() == [
        "--configfile=/etc/x/smb.conf",
        "--helper-protocol=ntlm-server-1",
        "--allow-mschapv2",
    ]
    assert (tmp_path / "stdin").read_text() == (
        "Username: alice\nNT-Domain: EXAMPLE\n"
        f"LANMAN-Challenge: {challenge.hex()}\nNT-Response: {r.nt_response.hex()}\n"
        "Request-User-Session-Key: Yes\n.\n"
    )
    # No configured domain: the one the user name carries; none at all: no NT-Domain.
    assert run(NtlmAuth(str(script)), "OTHER\\bob").hash_hash == HASH_HASH
    assert "NT-Domain: OTHER" in (tmp_path / "stdin").read_text().splitlines()
    assert run(NtlmAuth(str(script)), "bob").hash_hash == HASH_HASH
    assert "NT-Domain" not in (tmp_path / "stdin").read_text()
    assert (tmp_path / "argv").read_text().split() == [
        "--helper-protocol=ntlm-server-1",
        "--allow-mschapv2",
    ]


@pytest.mark.parametrize(
    ("output", "error"),
    [
        # winbindd's reasons: Samba 4.17's texts (MS-ERREF's), as the Samba DC test sees them
        (
            "When trying to update a password, this return status indicates that the value "
            "provided as the current password is not correct.",
            691,
        ),
        ("The specified account does not exist.", 691),
        ("The referenced account is currently disabled and cannot be logged on to.", 647),
        ("The user account password has expired.", 648),
        ("Logon failure", 691),  # older Samba's short texts
        ("Wrong Password", 691),
        ("No such user", 691),
        ("Account disabled", 647),
        ("Account locked out", 647),
        ("Password expired", 648),
        ("Must change password", 648),
        ("Invalid logon hours", 646),
        ("NT_STATUS_ACCOUNT_EXPIRED", 647),  # a reason without a text: its name
        ("The attempted logon is invalid. (0xc000006d)", 691),  # with a code: the code
        ("Account disabled (0xC0000072)", 647),
    ],
)
def test_refusals_are_values(tmp_path: Path, output: str, error: int) -> None:
    script = fake(tmp_path, said("Authenticated: No", f"Authentication-Error: {output}"))
    assert run(NtlmAuth(str(script))) == NtlmResult(None, error)


@pytest.mark.parametrize(
    "body",
    [
        said("Authenticated: No", "Authentication-Error: Reading winbind reply failed!"),
        said("Authenticated: No", "Authentication-Error: Access denied (0xc0000022)"),
        said("Authenticated: No", "Authentication-Error: Undetermined error"),
        said("Error: hex decode of 00112233445566778899aabbccddeeff0011 failed!"),
        said("Authenticated: Yes"),  # no User-Session-Key: not allowed to ask for it
        YES + "; exit 1",
        'echo "something else entirely"; exit 1',
        "kill -9 $$",
    ],
)
def test_a_broken_backend_is_unavailable_not_a_wrong_password(tmp_path: Path, body: str) -> None:
    with pytest.raises(PrimaryUnavailable) as err:
        run(NtlmAuth(str(fake(tmp_path, body))))
    message = err.value.message.lower()
    assert "pw" not in message and HASH_HASH.hex() not in message
    assert "00112233445566778899" not in message  # the request's hex is not repeated


def test_missing_program_and_timeout(tmp_path: Path) -> None:
    with pytest.raises(PrimaryUnavailable, match="cannot run"):
        run(NtlmAuth(str(tmp_path / "nowhere" / "ntlm_auth")))
    script = fake(tmp_path, "exec sleep 30")
    with pytest.raises(PrimaryUnavailable, match=r"did not answer within 0\.3 s"):
        run(NtlmAuth(str(script), timeout=0.3))
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists():  # killed (and reaped), not left behind
        assert time.monotonic() < deadline, "the timed-out ntlm_auth is still running"
        time.sleep(0.05)


def test_odd_user_names_never_reach_ntlm_auth(tmp_path: Path) -> None:
    script = fake(tmp_path, YES)
    auth = NtlmAuth(str(script))
    for name in ("", "-x", "a\nb", "a=b", "a/b", "x" * 257, "a\x00b", "bad\\-dom\\x", "a;b"):
        assert run(auth, name, response()) == NtlmResult(None, 691), name
    assert not (tmp_path / "argv").exists()
    assert valid_user_name("Jöns Ölund") and valid_user_name("kim.park@example.test")
    assert split_domain("A\\B\\c") == ("A\\B", "c")
    with pytest.raises(ValueError):
        NtlmAuth(domain="EX AMPLE\n")


def test_many_at_once_are_bounded(tmp_path: Path) -> None:
    # Each run appends its start and end; with max_concurrent=2 never more than 2 overlap.
    log = tmp_path / "log"
    script = fake(
        tmp_path,
        f"echo start >> {log}; sleep 0.2; echo end >> {log}; {YES}",
    )
    auth = NtlmAuth(str(script), max_concurrent=2)

    async def many() -> list[bytes | None]:
        return list(await asyncio.gather(*(auth.check("u", AUTH, response()) for _ in range(6))))

    assert asyncio.run(many()) == [HASH_HASH] * 6
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_the_child_gets_a_small_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENMFA_SECRET_SENTINEL", "x")
    script = fake(tmp_path, f"env > {tmp_path}/env; {YES}")
    assert run(NtlmAuth(str(script))).hash_hash == HASH_HASH
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert env["LC_ALL"] == "C" and env["PATH"] == os.environ["PATH"]
    assert "OPENMFA_SECRET_SENTINEL" not in env


def test_the_wait_for_a_slot_is_bounded(tmp_path: Path) -> None:
    """Every slot held (checks that hang): the next one waits no longer than the timeout, then
    the backend is unavailable (not a wrong password), and no process is started for it."""
    script = fake(tmp_path, YES)
    auth = NtlmAuth(str(script), timeout=0.3, max_concurrent=1)

    async def held() -> None:
        await auth._slots.acquire()  # the one slot, taken by a check that hangs
        with pytest.raises(PrimaryUnavailable, match=r"none ended within 0\.3 s"):
            await auth.verify("u", AUTH, response())
        auth._slots.release()
        assert (await auth.verify("u", AUTH, response())).hash_hash == HASH_HASH

    asyncio.run(held())
    assert (tmp_path / "argv").exists()  # (the last one ran)
