"""The User Portal's way in, with least privilege: a ``portal``-scoped API key alone can only
start a sign-in. After the user's first factor (``[portal] primary``: the node's own password,
LDAP, or upstream RADIUS) the node gives a short-lived *ticket*; after the second factor (any
code the user's methods take) a *session token* bound to that user. Every portal call about the
user carries the token; a stolen portal key cannot act for anyone who has not signed in.

Tickets and tokens are sealed with the data key (AES-GCM, ``SecretBox``), so they cannot be
forged or read, and every node of a farm (which shares the data key) checks them alike; each
names the portal key it was given to, its kind, its user and when it ends.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from ..config import Config
from ..errors import KeyFileError, OpenMfaError, Unauthorized
from ..store.database import Store

TICKET = "ticket"
SESSION = "session"
PREFIX = "omfp_"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a ticket or session token says."""

    kind: str
    user: str
    client: str
    expires_at: float


class PortalTokens:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        p = config.values["portal"]
        self.ticket_seconds = float(p["ticket_seconds"])
        self.session_seconds = float(p["session_minutes"]) * 60
        self.primary = str(p["primary"])

    def issue(self, kind: str, user: str, client: str, now: float) -> tuple[str, float]:
        life = self.ticket_seconds if kind == TICKET else self.session_seconds
        expires = now + life
        body = json.dumps({"k": kind, "u": user, "c": client, "e": expires}).encode()
        sealed = self.store.box.seal(body, f"portal {kind}")
        return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("="), expires

    def check(self, token: str, kind: str, client: str, now: float) -> Grant:
        """The grant ``token`` carries, if it is a ``kind`` given to ``client`` and still
        valid; otherwise Unauthorized (never saying which part was wrong)."""
        refused = Unauthorized(
            f"the {'sign-in' if kind == TICKET else 'session'} is not valid (expired, or not "
            "from this portal); sign in again"
        )
        if not token.startswith(PREFIX) or len(token) > 1024:
            raise refused
        raw = token[len(PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            data = json.loads(self.store.box.open(sealed, f"portal {kind}"))
        except (ValueError, KeyFileError, OpenMfaError):
            raise refused from None
        grant = Grant(str(data["k"]), str(data["u"]), str(data["c"]), float(data["e"]))
        if grant.kind != kind or grant.client != client or grant.expires_at <= now:
            raise refused
        return grant
