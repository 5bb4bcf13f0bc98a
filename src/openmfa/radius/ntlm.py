"""MS-CHAPv2's first factor checked by Active Directory through Samba's ``ntlm_auth`` (the way
FreeRADIUS's rlm_mschap does it) on a host that is a domain member (or a Samba DC itself).

    ntlm_auth --request-nt-key --allow-mschapv2 --username=U [--domain=D]
              --challenge=<ChallengeHash, RFC 2759 §8.2> --nt-response=<NT-Response>

prints ``NT_KEY: <32 hex>`` on success: the PasswordHashHash (RFC 2759 §8.4), from which
``mschap`` makes the authenticator response and the MPPE keys without ever holding the
password. A Samba DC answers only with ``ntlm auth = mschapv2-and-ntlmv2-only`` in its smb.conf
(the 4.17 default, ``ntlmv2-only``, refuses MS-CHAPv2 as if the password were wrong); the
process needs read access to winbindd's privileged pipe (group ``winbindd_priv`` on Debian).

Invariants owned here:
- ``ntlm_auth`` runs from an argument list (never a shell), with a user name from a
  conservative character set, a bounded time (killed after ``timeout``) and a bounded number
  at once; nothing secret (NT-Response, NT_KEY) reaches a log line or an error message.
- The answer is three-way: the hash hash (accepted), a refusal (``NtlmResult.hash_hash`` None:
  a wrong password, an unknown, disabled, locked or expired account), or
  ``PrimaryUnavailable`` (ntlm_auth missing, winbindd unreachable, a timeout, an answer this
  module does not understand) — a broken backend is never read as a wrong password.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

from ..errors import PrimaryUnavailable
from . import mschap

DEFAULT_NTLM_AUTH = "/usr/bin/ntlm_auth"

_NT_KEY = re.compile(rb"^NT_KEY: ([0-9A-Fa-f]{32})\s*$", re.MULTILINE)
_STATUS = re.compile(rb"\((0x[0-9A-Fa-f]{8})\)")
_NAME_PUNCTUATION = frozenset("._-@$ ")

# NTSTATUS codes that are an answer about the account (MS-ERREF 2.3.1), and the RFC 2759 §6
# error code each maps to (691: authentication failure, 647: disabled, 648: expired).
REFUSALS: dict[int, int] = {
    0xC000006D: 691,  # NT_STATUS_LOGON_FAILURE
    0xC000006A: 691,  # NT_STATUS_WRONG_PASSWORD
    0xC0000064: 691,  # NT_STATUS_NO_SUCH_USER
    0xC000006E: 691,  # NT_STATUS_ACCOUNT_RESTRICTION
    0xC000006F: 646,  # NT_STATUS_INVALID_LOGON_HOURS
    0xC0000070: 691,  # NT_STATUS_INVALID_WORKSTATION
    0xC0000072: 647,  # NT_STATUS_ACCOUNT_DISABLED
    0xC0000193: 647,  # NT_STATUS_ACCOUNT_EXPIRED
    0xC0000234: 647,  # NT_STATUS_ACCOUNT_LOCKED_OUT
    0xC0000071: 648,  # NT_STATUS_PASSWORD_EXPIRED
    0xC0000224: 648,  # NT_STATUS_PASSWORD_MUST_CHANGE
}
_REFUSAL_NAMES = (
    b"NT_STATUS_LOGON_FAILURE",
    b"NT_STATUS_WRONG_PASSWORD",
    b"NT_STATUS_NO_SUCH_USER",
)


@dataclass(frozen=True, slots=True)
class NtlmResult:
    hash_hash: bytes | None
    """The PasswordHashHash when the response is right; None when the domain refused it."""
    error: int = 0
    """On a refusal, the MS-CHAP-Error code (RFC 2759 §6) to send: 691, 646, 647 or 648."""


def valid_user_name(name: str) -> bool:
    """A user name safe and plausible for ``--username=``: letters, digits, ``._-@$`` and
    spaces, 1..256 characters (RFC 2759 §4), not starting with ``-``."""
    return (
        0 < len(name) <= 256
        and not name.startswith("-")
        and all(c.isalnum() or c in _NAME_PUNCTUATION for c in name)
    )


def split_domain(user_name: str) -> tuple[str, str]:
    """``DOMAIN\\user`` → (``DOMAIN``, ``user``); a bare name has no domain."""
    domain, _, user = user_name.rpartition("\\")
    return domain, user


class NtlmAuth:
    """Checks MS-CHAPv2 responses with ``ntlm_auth``. Proposed ``[ntlm]`` settings:
    ``ntlm_auth`` (path), ``domain`` (NetBIOS name; empty: the one the user name carries, else
    the host's workgroup), ``smb_conf`` (empty: Samba's default), ``timeout`` (seconds),
    ``max_concurrent``."""

    def __init__(
        self,
        ntlm_auth: str = DEFAULT_NTLM_AUTH,
        *,
        domain: str = "",
        smb_conf: str = "",
        timeout: float = 5.0,
        max_concurrent: int = 8,
    ) -> None:
        if domain and not valid_user_name(domain):
            raise ValueError(f"not a domain name: {domain!r}")
        self.ntlm_auth = ntlm_auth
        self.domain = domain
        self.smb_conf = smb_conf
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrent)

    def argv(self, user_name: str, challenge: bytes, nt_response: bytes) -> list[str] | None:
        """The command line for one check, or None when the user name is not acceptable."""
        domain, user = split_domain(user_name)
        domain = self.domain or domain
        if not valid_user_name(user) or (domain and not valid_user_name(domain)):
            return None
        argv = [self.ntlm_auth]
        if self.smb_conf:
            argv.append(f"--configfile={self.smb_conf}")
        argv += ["--request-nt-key", "--allow-mschapv2", f"--username={user}"]
        if domain:
            argv.append(f"--domain={domain}")
        argv += [f"--challenge={challenge.hex()}", f"--nt-response={nt_response.hex()}"]
        return argv

    async def check(
        self, user_name: str, authenticator_challenge: bytes, response: mschap.Chap2Response
    ) -> bytes | None:
        """The PasswordHashHash when ``response`` is right for ``user_name``, None when the
        domain refuses it; ``PrimaryUnavailable`` when it could not be asked."""
        return (await self.verify(user_name, authenticator_challenge, response)).hash_hash

    async def verify(
        self, user_name: str, authenticator_challenge: bytes, response: mschap.Chap2Response
    ) -> NtlmResult:
        if len(authenticator_challenge) != 16 or len(response.nt_response) != 24:
            return NtlmResult(None, 691)
        challenge = mschap.challenge_hash(
            response.peer_challenge, authenticator_challenge, user_name.encode("utf-8")
        )
        argv = self.argv(user_name, challenge, response.nt_response)
        if argv is None:
            return NtlmResult(None, 691)
        async with self._slots:
            status, out = await self._run(argv)
        return self.interpret(status, out)

    async def _run(self, argv: list[str]) -> tuple[int, bytes]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as exc:
            raise PrimaryUnavailable(
                f"cannot run {self.ntlm_auth} ({exc.strerror}): install Samba's winbind "
                "package or set [ntlm] ntlm_auth to its path"
            ) from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PrimaryUnavailable(
                f"ntlm_auth did not answer within {self.timeout:g} s: is winbindd running "
                "and is a domain controller reachable (wbinfo -P)?"
            ) from None
        return proc.returncode or 0, out[:4096]

    @staticmethod
    def interpret(status: int, out: bytes) -> NtlmResult:
        """ntlm_auth's exit status and output as a result (sans-IO, for the tests too)."""
        if status == 0:
            match = _NT_KEY.search(out)
            if match is None:
                raise PrimaryUnavailable(
                    "ntlm_auth accepted the response but sent no NT_KEY (run it with "
                    "--request-nt-key; may this process read winbindd's privileged pipe?)"
                )
            return NtlmResult(bytes.fromhex(match.group(1).decode("ascii")))
        codes = _STATUS.findall(out)
        if codes:
            code = int(codes[-1], 16)
            if code in REFUSALS:
                return NtlmResult(None, REFUSALS[code])
            raise PrimaryUnavailable(
                f"ntlm_auth could not check the response (NTSTATUS {code:#010x}): is winbindd "
                "running, may this process read its privileged pipe (group winbindd_priv), "
                "and does the domain allow MS-CHAPv2 (ntlm auth = mschapv2-and-ntlmv2-only)?"
            )
        if any(name in out for name in _REFUSAL_NAMES):
            return NtlmResult(None, 691)
        raise PrimaryUnavailable(
            f"ntlm_auth failed (exit status {status}) with an answer OpenMFA does not know: "
            "run it by hand to see why"
        )
