"""Running PostgreSQL's own tools (``pg_dump``, ``pg_restore``) on a ``[store] url``.

Invariant owned here: the password of the url never reaches a command line (where ``ps`` shows
it, and where a failure's message would repeat it): it goes to the tool in ``PGPASSWORD``, and
the url the tool gets has none. A failure says the tool, its exit status and its last line on
stderr, never the command.
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import BackupFailed


def without_password(url: str) -> tuple[str, str]:
    """``url`` with no password (in its user part or its query), and the password ("" when
    there is none)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    password = ""
    if at and ":" in userinfo:
        user, _, given = userinfo.partition(":")
        password = unquote(given)
        userinfo = user
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query:
        if key == "password":
            password = value
    query = [(k, v) for k, v in query if k != "password"]
    netloc = f"{userinfo}@{hosts}" if at else hosts
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query))), password


def run(tool: str, args: list[str], url: str, timeout: float = 3600) -> str:
    """Run ``tool`` with ``args`` on the database of ``url``; its stdout. BackupFailed (without
    the password, without the command) when it fails."""
    dsn, password = without_password(url)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    try:
        out = subprocess.run(
            [tool, *args, "--dbname", dsn],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BackupFailed(f"{tool} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise BackupFailed(f"{tool} could not be run ({exc.strerror or exc})") from None
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no message"
        if password:
            last = last.replace(password, "***")
        raise BackupFailed(f"{tool} failed (exit status {out.returncode}): {last}")
    return out.stdout
