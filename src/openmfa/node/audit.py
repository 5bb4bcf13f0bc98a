"""Reading the audit log (writing happens with each decision and change), and where a sign-in
came from.

Rules owned here:
- a sign-in's origin — the person's address as the channel knows it (the portal's browser
  behind its trusted proxies, a RADIUS request's Calling-Station-Id or else its NAS, what an
  application says in ``source``) and, for a browser, a short description of it (browser and
  system, from the user agent by ``portal_sessions.summarise``; the user agent itself is not
  kept) — is personal data: it is sealed at rest (AES-256-GCM under the data key, bound to the
  user's name: ``audit-from:NAME``), as a portal session's address is, so a copy of the data
  file or a backup holds no one's addresses in the clear;
- sealing costs about 2 microseconds and no query: it is done only for a row that has an
  origin, in the transaction that writes the row anyway;
- a row whose seal does not open (another farm's key, damaged) shows no origin, never fails
  the read.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from sqlalchemy import insert, select

from ..contract import AuditView
from ..errors import KeyFileError, OpenMfaError
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.crypto import SecretBox
from ..store.database import Store

_SEP = "\x1f"  # (unit separator: never in a value, see _clean)


def _clean(text: str, limit: int) -> str:
    """Printable text of at most ``limit`` characters (what is not printable is dropped)."""
    text = text[:limit]
    return text if text.isprintable() else "".join(c for c in text if c.isprintable())


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a sign-in came from: an address, and for a browser its name and system."""

    address: str = ""
    browser: str = ""
    system: str = ""

    def sealed(self, box: SecretBox, user: str) -> str:
        """This origin sealed for ``user``'s audit rows ("" when nothing is known)."""
        return seal_origin(box, user, self.address, self.browser, self.system)


NOWHERE = Origin()


def seal_origin(
    box: SecretBox, user: str, address: str, browser: str = "", system: str = ""
) -> str:
    if not (address or browser or system):
        return ""
    plain = _SEP.join((_clean(address, 64), _clean(browser, 32), _clean(system, 32)))
    return base64.b64encode(box.seal(plain.encode(), "audit-from:" + user)).decode("ascii")


def open_origin(box: SecretBox, user: str, sealed: str) -> Origin:
    """The origin of one of ``user``'s audit rows (``NOWHERE`` when none, or it does not
    open)."""
    if not sealed:
        return NOWHERE
    try:
        plain = box.open(base64.b64decode(sealed), "audit-from:" + user).decode()
        address, browser, system = plain.split(_SEP)
    except (ValueError, binascii.Error, KeyFileError, OpenMfaError):
        return NOWHERE
    return Origin(address, browser, system)


def query(
    store: Store,
    *,
    user: str | None = None,
    since: float | None = None,
    limit: int = 100,
    after_id: int = 0,
    actions: tuple[str, ...] = (),
    newest_first: bool = False,
) -> list[AuditView]:
    q = select(t.audit).where(t.audit.c.id > after_id)
    if user is not None:
        q = q.where(t.audit.c.user_name == user)
    if since is not None:
        q = q.where(t.audit.c.at >= since)
    if actions:
        q = q.where(t.audit.c.action.in_(actions))
    q = q.order_by(t.audit.c.id.desc() if newest_first else t.audit.c.id).limit(limit)
    with store.read() as conn:
        rows = conn.execute(q).all()
    views = []
    for r in rows:
        o = open_origin(store.box, r.user_name, r.source_enc)
        views.append(
            AuditView(
                id=r.id,
                at=r.at,
                node=r.node,
                action=r.action,
                user=r.user_name,
                client=r.client,
                method_id=r.method_id,
                result=r.result,
                reason=r.reason,
                request_id=r.request_id,
                detail=r.detail,
                address=o.address,
                browser=o.browser,
                system=o.system,
            )
        )
    return views


SIGN_INS = ("authenticate", "primary", "portal.sign_in", "push.answer", "fraud.report")
"""The events a user sees as "my recent sign-ins"."""
CHANNELS = {
    "portal": "portal",
    "adapter": "application",
    "admin": "application",
    "mobile": "phone",
    "console": "console",
}
"""The channel of a sign-in that came with an API key of each scope."""
IN_SERVE = {"portal (in serve)": "portal", "mobile (in serve)": "mobile"}
"""The scopes of the in-memory keys of the parts ``openmfa serve`` mounts (their names in
``server.py``): they are in no table."""


def sign_ins(store: Store, user: str, limit: int) -> list[AuditView]:
    """``user``'s recent sign-ins, newest first, each with the channel it came by (the
    scope of the API key it names, a RADIUS client, the command line)."""
    events = query(store, user=user, limit=limit, actions=SIGN_INS, newest_first=True)
    names = {e.client for e in events}
    with store.read() as conn:
        scopes = dict(
            conn.execute(
                select(t.api_keys.c.name, t.api_keys.c.scope).where(t.api_keys.c.name.in_(names))
            ).all()
        )
    for e in events:
        e.channel = channel_of(e.client, scopes.get(e.client, ""))
    return events


def channel_of(client: str, scope: str) -> str:
    """The channel an audit row's ``client`` came by: ``radius`` (a RADIUS client), ``cli``,
    or by its API key's ``scope`` (``CHANNELS``; "" when not known)."""
    if client.startswith("radius:"):
        return "radius"
    if client == "cli":
        return "cli"
    return CHANNELS.get(scope or IN_SERVE.get(client, ""), "")


def channel(store: Store, client: str) -> str:
    """``channel_of`` ``client``, its API key's scope read from the store."""
    if client.startswith("radius:") or client == "cli" or not client:
        return channel_of(client, "")
    with store.read() as conn:
        scope = conn.scalar(select(t.api_keys.c.scope).where(t.api_keys.c.name == client))
    return channel_of(client, scope or "")


def record(store: Store, event: AuditEvent) -> None:
    """Write one audit event on its own (events that go with a change or a decision are
    written in that transaction instead)."""
    with store.write() as conn:
        conn.execute(insert(t.audit).values(event.row(store.node_name, time.time())))
