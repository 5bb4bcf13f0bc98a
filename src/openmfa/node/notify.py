"""Security notices ("a word when something changes"), sent in the background from the audit
log: a method or phone added or removed, the password changed, a push reported as not theirs,
the account locked, a bypass issued. Configured in ``[notify]`` of server.toml. A person's
mail is in the language they read the portal in (``users.language``, which the portal tells the
node: ``portal_sessions``), else in ``[notify] language``; the security mailbox's and the
webhook's are always in ``[notify] language``.

Invariant owned here: the queue *is* the audit log. Every noticed event is an audit row written
in the same transaction as the change it records (or relayed to the master from the node where
it happened), so it is as durable as the change. Each channel — the person's mail, the security
mailbox, the webhook — keeps a cursor (the last audit id it has done with) in this node's
``meta`` (``notify.cursor.<channel>``), moved only after the notice was delivered or refused for
good. A channel that cannot deliver waits with exponential backoff and keeps its place: nothing
is lost, the other channels go on, and nothing is added to a sign-in's or a verification's path
(this worker only reads the log). A notice may go twice if the node stops between delivering and
moving the cursor (at least once, never never).

Only the node that writes sends: a node on its own, the farm's master, and, in a shared-database
farm, the one node holding the ``notify.sender`` lease — so a farm sends one notice per event. A
cursor starts at the newest audit row the first time notices are on (no old history is mailed).
On PostgreSQL, rows are read only once they are ``SETTLE_SECONDS`` old: ids are handed out before
commit there, so a slower transaction could land below a cursor already moved past it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from ..config import Config
from ..store import formats
from ..store import tables as t
from ..store.database import Store
from ..store.role import SHARED, role_from
from .audit import channel, open_origin
from .notify_send import Retry, SmtpSender, Undeliverable, WebhookSender
from .notify_text import LANGUAGES, NOTICED, Notice, render

log = logging.getLogger("openmfa.notify")

BATCH = 50
IDLE_SECONDS = 1.0
"""How often the log is looked at when nothing waits."""
MAX_BACKOFF_SECONDS = 300.0
LEASE_SECONDS = 30.0
SETTLE_SECONDS = 10.0
_NOTICED = tuple(NOTICED)


@dataclass
class Channel:
    name: str  # person, security, webhook
    target: str
    cursor: int = 0
    failures: int = 0
    next_try: float = 0.0
    outage_since: float | None = None
    sent: int = 0
    failed_attempts: int = 0
    undeliverable: int = 0

    @property
    def key(self) -> str:
        return "notify.cursor." + self.name


class Notifier:
    def __init__(
        self,
        store: Store,
        config: Config,
        smtp: SmtpSender | None = None,
        webhook: WebhookSender | None = None,
    ) -> None:
        n = config.values["notify"]
        self.store = store
        self.language = str(n["language"])
        self.mailbox = str(n["security_mailbox"])
        self.smtp = smtp or (SmtpSender(config) if n["host"] else None)
        self.webhook = webhook or (WebhookSender(config) if n["webhook_url"] else None)
        self.channels: list[Channel] = []
        if self.smtp is not None:
            self.channels.append(Channel("person", self.smtp.target))
            if self.mailbox:
                self.channels.append(Channel("security", self.smtp.target))
        if self.webhook is not None:
            self.channels.append(Channel("webhook", self.webhook.target))
        self.settle = SETTLE_SECONDS if store.engine.dialect.name == "postgresql" else 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        self.load_cursors()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="openmfa-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.tick()
            except Exception:
                log.exception("notices: looking at the audit log failed; trying again")
                wait = 5.0
            self._stop.wait(wait)

    def load_cursors(self) -> None:
        """Each channel's place in the log; a new channel starts at the newest row (written
        once, at start: a pass only reads, so it never takes the write lock while idle)."""
        with self.store.write() as conn:
            newest = int(conn.scalar(select(func.max(t.audit.c.id))) or 0)
            for ch in self.channels:
                value = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == ch.key))
                if value is None:
                    conn.execute(insert(t.meta).values(key=ch.key, value=str(newest)))
                ch.cursor = newest if value is None else int(value)

    def _reread_cursors(self) -> None:
        """Where another sender left them (a shared farm's lease moved, or a restart)."""
        keys = {ch.key: ch for ch in self.channels}
        with self.store.read() as conn:
            rows = conn.execute(
                select(t.meta.c.key, t.meta.c.value).where(t.meta.c.key.in_(list(keys)))
            ).all()
        for key, value in rows:
            keys[key].cursor = max(keys[key].cursor, int(value))

    # -- one pass ---------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> float:
        """Send what is due; returns how long to wait before the next pass."""
        now = time.time() if now is None else now
        if not self._may_send(now):
            return 5.0
        self._reread_cursors()
        rows = self._rows(min(ch.cursor for ch in self.channels), now)
        wait = IDLE_SECONDS
        for ch in self.channels:
            if ch.next_try > now:
                wait = min(wait, ch.next_try - now)
                continue
            for row in rows:
                if row.id <= ch.cursor:
                    continue
                try:
                    self._deliver(ch, row)
                except Retry as exc:
                    self._failed(ch, str(exc), now)
                    wait = min(wait, ch.next_try - now)
                    break
                except Undeliverable as exc:  # (its reason names no address: personal data)
                    ch.undeliverable += 1
                    log.warning("notice (%s) of audit record %d: %s", ch.name, row.id, exc)
                except Exception as exc:  # a bug, or a record it cannot read: it waits too
                    log.exception("notice (%s) of audit record %d failed", ch.name, row.id)
                    self._failed(ch, type(exc).__name__, now)
                    wait = min(wait, ch.next_try - now)
                    break
                else:
                    ch.sent += 1
                self._recovered(ch, now)
                self._advance(ch, row.id)
        return max(wait, 0.05)

    def _deliver(self, ch: Channel, row: Any) -> None:
        # Where it came from (sealed per user: opened here, "" when none or it does not open).
        origin = open_origin(self.store.box, row.user_name, row.source_enc)
        via = channel(self.store, row.client)
        if ch.name == "webhook":
            assert self.webhook is not None
            self.webhook.send(render(row, self.language, origin=origin, channel=via))
            return
        assert self.smtp is not None
        if ch.name == "security":
            to, display, language = self.mailbox, "", ""
        else:
            to, display, language = self._address(row.user_name)
            if not to:
                raise Undeliverable(f"{row.user_name!r} has no email address")
        # The person's own language where the portal told the node one it has words for.
        lang = language if ch.name == "person" and language in LANGUAGES else self.language
        notice: Notice = render(row, lang, display, origin, via)
        self.smtp.send(notice, to, f"openmfa.{row.id}.{ch.name}.{_safe(self.store.node_name)}")

    def _failed(self, ch: Channel, why: str, now: float) -> None:
        ch.failed_attempts += 1
        ch.failures += 1
        ch.next_try = now + min(MAX_BACKOFF_SECONDS, 2.0 ** (ch.failures - 1))
        if ch.outage_since is None:
            ch.outage_since = now
            log.warning(
                "notices (%s): the %s cannot take them: %s; they wait and are tried again, "
                "none is lost",
                ch.name,
                ch.target,
                why,
            )

    def _recovered(self, ch: Channel, now: float) -> None:
        if ch.outage_since is not None:
            log.info(
                "notices (%s): the %s takes them again after %.0f s",
                ch.name,
                ch.target,
                now - ch.outage_since,
            )
        ch.failures, ch.next_try, ch.outage_since = 0, 0.0, None

    def _advance(self, ch: Channel, audit_id: int) -> None:
        with self.store.write() as conn:
            _set(conn, ch.key, str(audit_id))
        ch.cursor = audit_id

    # -- reading ----------------------------------------------------------------------------

    def _rows(self, after: int, now: float) -> list[Any]:
        a = t.audit.c
        q = (
            select(t.audit)  # (every column: source_enc too, the sealed origin)
            .where(a.id > after, a.action.in_(_NOTICED), a.result == "ok")
            .order_by(a.id)
            .limit(BATCH)
        )
        if self.settle:
            q = q.where(a.at <= now - self.settle)
        with self.store.read() as conn:
            return list(conn.execute(q).all())

    def _address(self, user: str) -> tuple[str, str, str]:
        """The person's email (sealed at rest from data format 2), display name, and the
        language they read the portal in ("" when the portal has not said: data format 10)."""
        u = t.users.c
        with self.store.read() as conn:
            row = conn.execute(
                select(u.id, u.email, u.display_name, u.contact_enc, u.language).where(
                    u.name == user
                )
            ).first()
        if row is None:
            return "", "", ""
        email = row.email
        if row.contact_enc is not None:
            email, _ = formats.open_contact(self.store.box, row.id, row.contact_enc)
        return email.strip(), row.display_name, row.language or ""

    def queued(self, now: float | None = None) -> dict[str, tuple[int, float]]:
        """Per channel: notices waiting, and the age in seconds of the oldest (0: none)."""
        now = time.time() if now is None else now
        a = t.audit.c
        out = {}
        with self.store.read() as conn:
            for ch in self.channels:
                count, oldest = conn.execute(
                    select(func.count(), func.min(a.at)).where(
                        a.id > ch.cursor, a.action.in_(_NOTICED), a.result == "ok"
                    )
                ).one()
                out[ch.name] = (int(count), max(0.0, now - oldest) if oldest else 0.0)
        return out

    # -- who sends --------------------------------------------------------------------------

    def _may_send(self, now: float) -> bool:
        """A node that writes sends; in a shared-database farm only the lease's holder."""
        with self.store.read() as conn:
            role = role_from(conn)
        if not role.writes:
            return False
        if role.name != SHARED:
            return True
        me = self.store.node_name
        with self.store.read() as conn:
            held = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "notify.sender"))
        lease = json.loads(held) if held else {}
        if lease.get("node") == me and float(lease.get("until", 0)) > now + LEASE_SECONDS / 2:
            return True  # held, and not yet to be renewed: no write
        with self.store.write() as conn:
            held = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "notify.sender"))
            lease = json.loads(held) if held else {}
            if lease.get("node") not in (None, me) and float(lease.get("until", 0)) > now:
                return False
            _set(conn, "notify.sender", json.dumps({"node": me, "until": now + LEASE_SECONDS}))
        return True


def _set(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(t.meta).where(t.meta.c.key == key))
    conn.execute(insert(t.meta).values(key=key, value=value))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64] or "node"
