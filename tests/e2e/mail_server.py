"""A real mail server for the security-notice tests: Debian's exim4 (exim4-daemon-light) run as
our own process with its own configuration file, listening on a free 127.0.0.1 port, taking
mail for any address and delivering it into one maildir the test reads. Stopped (and started
again on the same port) by the PID we started; Debian's own exim service is left alone.

Exim insists that a configuration given with ``-C`` is owned by root and that what it writes
(spool, logs, the maildir) belongs to its own user, ``Debian-exim``; so the tests that use it
run as root (they are skipped otherwise)."""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from .helpers import free_port, stop
from .services import _wait_tcp

EXIM = shutil.which("exim4", path="/usr/sbin:/usr/bin") or "/usr/sbin/exim4"
EXIM_USER = "Debian-exim"

CONF = """\
primary_hostname = openmfa.test
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/log/exim.pid
local_interfaces = 127.0.0.1
tls_advertise_hosts =
never_users =
keep_environment =
domainlist local_domains = *
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept

begin routers
everyone:
  driver = accept
  transport = to_maildir

begin transports
to_maildir:
  driver = appendfile
  directory = {root}/maildir
  maildir_format
  create_directory
  user = {user}
  envelope_to_add

begin retry
* * F,1m,10s
"""


def usable() -> str:
    """Why exim cannot be run here ("" when it can)."""
    if not os.path.exists(EXIM):
        return "exim4 is not installed (scripts/system-deps.sh installs exim4-daemon-light)"
    if os.geteuid() != 0:
        return "a private exim (-C) needs root: its config must be root's"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"no {EXIM_USER} user"
    return ""


@dataclass
class Exim:
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    read: set[str] = field(default_factory=set)

    def start(self) -> None:
        with (self.root / "exim.out").open("ab") as log:
            self.proc = subprocess.Popen(
                [EXIM, "-C", str(self.root / "exim.conf"), "-bdf", "-oX", str(self.port), "-odf"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_tcp(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def messages(self, to: str = "") -> list[EmailMessage]:
        """Every message delivered so far (to envelope address ``to`` if given)."""
        new = self.root / "maildir" / "new"
        out = []
        for path in sorted(new.glob("*")) if new.exists() else []:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            if not to or to in str(msg.get("Envelope-to", "")):
                out.append(msg)
        return out


@contextmanager
def exim() -> Iterator[Exim]:
    """Exim on a free port; its folder is its own under /tmp (exim's user must reach the
    maildir, and pytest's folders are root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="openmfa-exim-"))
    root.chmod(0o755)
    user = pwd.getpwnam(EXIM_USER)
    for sub in ("spool", "log", "maildir"):
        (root / sub).mkdir()
        os.chown(root / sub, user.pw_uid, user.pw_gid)
    conf = root / "exim.conf"
    conf.write_text(CONF.format(root=root, user=EXIM_USER))
    conf.chmod(0o644)
    server = Exim(root, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
