"""Where a security notice goes: the organisation's SMTP server, and a webhook (``[notify]``).

One seam per outside system: ``SmtpSender.send`` and ``WebhookSender.send`` each deliver one
notice or raise ``Retry`` (the other end is down or refuses for now: the notice waits) or
``Undeliverable`` (the other end refuses this notice for good, like an unknown mailbox: it is
logged and counted, and the next one goes).
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import stat
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import httpx

from ..config import Config
from ..errors import ConfigError
from .notify_text import Notice

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Retry(Exception):
    """Not delivered now; try again later (the reason, never a secret, is the message)."""


class Undeliverable(Exception):
    """Refused for good (this notice only)."""


class SmtpSender:
    def __init__(self, config: Config) -> None:
        n = config.values["notify"]
        self.host = str(n["host"])
        self.port = int(n["port"])
        self.security = str(n["security"])
        self.username = str(n["username"])
        self.sender = str(n["sender"])
        self.timeout = float(n["timeout_seconds"])
        where = f"{config.path or 'server.toml'}: [notify]"
        if self.security == "none" and self.host not in LOOPBACK:
            raise ConfigError(
                f"{where} security = 'none' is only for a mail server on this host "
                "(127.0.0.1, ::1, localhost); use 'starttls' or 'tls'"
            )
        if not self.sender or "@" not in self.sender:
            raise ConfigError(f"{where} sender must be the address notices come from")
        self.password = _password(str(n["password_file"]), where)
        if self.username and not self.password:
            raise ConfigError(f"{where} username is set: give its password in password_file")

    @property
    def target(self) -> str:
        return f"mail server {self.host}:{self.port}"

    def send(self, notice: Notice, to: str, message_id: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = notice.subject
        msg["Date"] = formatdate(notice.facts["at"], usegmt=True)
        msg["Message-ID"] = f"<{message_id}@{self.sender.rpartition('@')[2]}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(notice.text)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise Undeliverable(f"the mail server refuses the address ({codes[0]})") from None
            raise Retry(f"the mail server refuses the address for now ({codes})") from None
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:
                raise Undeliverable(
                    f"the mail server refuses the message ({exc.smtp_code})"
                ) from None
            raise Retry(f"the mail server answers {exc.smtp_code}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise Retry(f"the mail server refuses [notify] username ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            raise Retry(f"the mail server answers {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(f"{type(exc).__name__}: {exc}") from None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp


class WebhookSender:
    def __init__(self, config: Config) -> None:
        n = config.values["notify"]
        self.url = str(n["webhook_url"])
        self.timeout = float(n["timeout_seconds"])
        try:
            u = httpx.URL(self.url)
        except httpx.InvalidURL:
            u = httpx.URL()
        if u.scheme not in ("https", "http") or not u.host:
            raise ConfigError("[notify] webhook_url must be an http:// or https:// URL")
        host = f"[{u.host}]" if ":" in u.host else u.host
        self._target = f"webhook {u.scheme}://{host}" + (f":{u.port}" if u.port else "")

    @property
    def target(self) -> str:
        """How the log names it: scheme, host and port only (a webhook's secret is often in
        its path, like Slack's and Teams', or its user and password, or its query)."""
        return self._target

    def send(self, notice: Notice) -> None:
        body = json.dumps(notice.facts, separators=(",", ":"))
        try:
            answer = httpx.post(
                self.url,
                content=body,
                headers={"content-type": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise Retry(f"{type(exc).__name__}") from None
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise Retry(f"the webhook answers {answer.status_code}")
        if answer.status_code >= 400:
            raise Undeliverable(f"the webhook refuses the notice ({answer.status_code})")


def _password(path: str, where: str) -> str:
    """The SMTP password from a file only its owner may read (like the node's key files)."""
    if not path:
        return ""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{where} password_file {p}: {exc.strerror}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{p} is readable by others; chmod 600 it")
    return text.strip()
