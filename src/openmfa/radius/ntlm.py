"""MS-CHAPv2's first factor checked by Active Directory through Samba's ``ntlm_auth`` on a host
that is a domain member (or a Samba DC itself), in its helper protocol, one process a check:

    ntlm_auth [--configfile=F] --helper-protocol=ntlm-server-1 --allow-mschapv2

reads the request on its standard input (``Username:``, ``NT-Domain:``, ``LANMAN-Challenge:``
the ChallengeHash of RFC 2759 §8.2, ``NT-Response:``, ``Request-User-Session-Key: Yes``, then a
line ``.``) and answers ``Authenticated: Yes`` with ``User-Session-Key: <32 hex>``: for an
MS-CHAPv2 (NTLMv1-style) response, the PasswordHashHash (RFC 2759 §8.4) — what FreeRADIUS's
rlm_mschap reads as ``NT_KEY`` from ``--request-nt-key`` — from which ``mschap`` makes the
authenticator response and the MPPE keys without ever holding the password; or
``Authenticated: No`` with ``Authentication-Error:`` and winbindd's reason. Not the command
line: any local user may read another process's (``/proc/PID/cmdline``), and an NT-Response
with its challenge is cracked offline to the NT hash. A Samba DC answers only with ``ntlm auth
= mschapv2-and-ntlmv2-only`` in its smb.conf (the 4.17 default, ``ntlmv2-only``, refuses
MS-CHAPv2 as if the password were wrong); the process needs read access to winbindd's
privileged pipe (group ``winbindd_priv`` on Debian).

Invariants owned here:
- ``ntlm_auth`` runs from an argument list (never a shell) with nothing of the request on it;
  the request goes on its standard input, with a user name from a conservative character set;
  a bounded time (killed after ``timeout``; the wait for a slot bounded by it too) and a
  bounded number at once; nothing secret (NT-Response, the session key) reaches a log line or
  an error message.
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

_SESSION_KEY = re.compile(rb"^User-Session-Key: ([0-9A-Fa-f]{32})\s*$", re.MULTILINE)
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]{16,}")
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
_REFUSAL_TEXTS: dict[bytes, int] = {
    # winbindd's reasons as ntlm_auth's helper protocol passes them on, lower case, without a
    # final full stop (Samba's get_friendly_nt_error_msg: a short text before 4.17, else the
    # NT_STATUS name)
    b"logon failure": 691,
    b"wrong password": 691,
    b"no such user": 691,
    b"account restriction": 691,
    b"invalid workstation": 691,
    b"invalid logon hours": 646,
    b"account disabled": 647,
    b"account expired": 647,
    b"account locked out": 647,
    b"password expired": 648,
    b"must change password": 648,
    # the same in Samba 4.17 and later: MS-ERREF 2.3.1's descriptions
    b"the attempted logon is invalid. this is either due to a bad username or authentication "
    b"information": 691,
    b"when trying to update a password, this return status indicates that the value provided "
    b"as the current password is not correct": 691,
    b"the specified account does not exist": 691,
    b"indicates a referenced user name and authentication information are valid, but some "
    b"user account restriction has prevented successful authentication (such as time-of-day "
    b"restrictions)": 691,
    b"the user account is restricted so that it cannot be used to log on from the source "
    b"workstation": 691,
    b"the user account has time restrictions and cannot be logged onto at this time": 646,
    b"the referenced account is currently disabled and cannot be logged on to": 647,
    b"the user account has expired": 647,
    b"the user account has been automatically locked because too many invalid logon attempts "
    b"or password change attempts have been requested": 647,
    b"the user account password has expired": 648,
    b"the user password must be changed before logging on the first time": 648,
    b"nt_status_logon_failure": 691,
    b"nt_status_wrong_password": 691,
    b"nt_status_no_such_user": 691,
    b"nt_status_account_restriction": 691,
    b"nt_status_invalid_workstation": 691,
    b"nt_status_invalid_logon_hours": 646,
    b"nt_status_account_disabled": 647,
    b"nt_status_account_expired": 647,
    b"nt_status_account_locked_out": 647,
    b"nt_status_password_expired": 648,
    b"nt_status_password_must_change": 648,
}


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
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)

    def argv(self) -> list[str]:
        """The command line: the same for every check, nothing of the request on it."""
        argv = [self.ntlm_auth]
        if self.smb_conf:
            argv.append(f"--configfile={self.smb_conf}")
        return [*argv, "--helper-protocol=ntlm-server-1", "--allow-mschapv2"]

    def request(self, user_name: str, challenge: bytes, nt_response: bytes) -> bytes | None:
        """The helper-protocol request for one check, or None when the user name is not
        acceptable (it could not be one line of the protocol, or is implausible)."""
        domain, user = split_domain(user_name)
        domain = self.domain or domain
        if not valid_user_name(user) or (domain and not valid_user_name(domain)):
            return None
        lines = [f"Username: {user}"]
        if domain:
            lines.append(f"NT-Domain: {domain}")
        lines += [
            f"LANMAN-Challenge: {challenge.hex()}",
            f"NT-Response: {nt_response.hex()}",
            "Request-User-Session-Key: Yes",
            ".",
            "",
        ]
        return "\n".join(lines).encode("utf-8")

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
        request = self.request(user_name, challenge, response.nt_response)
        if request is None:
            return NtlmResult(None, 691)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except TimeoutError:
            raise PrimaryUnavailable(
                f"{self.max_concurrent} ntlm_auth checks were running and none ended within "
                f"{self.timeout:g} s: is a domain controller slow or unreachable (wbinfo -P)?"
            ) from None
        try:
            status, out = await self._run(request)
        finally:
            self._slots.release()
        return self.interpret(status, out)

    async def _run(self, request: bytes) -> tuple[int, bytes]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.PIPE,
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
            out, _ = await asyncio.wait_for(proc.communicate(request), self.timeout)
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
        """ntlm_auth's exit status and helper-protocol answer as a result (sans-IO, for the
        tests too)."""
        lines = out.splitlines()
        if b"Authenticated: Yes" in lines and status == 0:
            match = _SESSION_KEY.search(out)
            if match is None:
                raise PrimaryUnavailable(
                    "ntlm_auth accepted the response but sent no User-Session-Key (may this "
                    "process read winbindd's privileged pipe, group winbindd_priv?)"
                )
            return NtlmResult(bytes.fromhex(match.group(1).decode("ascii")))
        said = _HEX_RUN.sub(
            b"...",
            b" ".join(
                line.partition(b":")[2].strip()
                for line in lines
                if line.startswith((b"Authentication-Error:", b"Error:"))
            ),
        )  # (an error that quotes the request's hex is not passed on)
        if b"Authenticated: No" in lines:
            codes = _STATUS.findall(said)
            if codes and int(codes[-1], 16) in REFUSALS:
                return NtlmResult(None, REFUSALS[int(codes[-1], 16)])
            reason = said.lower().rstrip(b". ")
            if not codes and reason in _REFUSAL_TEXTS:
                return NtlmResult(None, _REFUSAL_TEXTS[reason])
        if said:
            raise PrimaryUnavailable(
                "ntlm_auth could not check the response ("
                + said[:200].decode("ascii", "replace")
                + "): is winbindd running, may this process read its privileged pipe (group "
                "winbindd_priv), and does the domain allow MS-CHAPv2 (ntlm auth = "
                "mschapv2-and-ntlmv2-only)?"
            )
        raise PrimaryUnavailable(
            f"ntlm_auth failed (exit status {status}) with an answer OpenMFA does not know: "
            "run it by hand to see why"
        )
