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
import secrets
from dataclasses import dataclass

from ..config import Config
from ..errors import InvalidInput, KeyFileError, OpenMfaError, Reauthenticate, Unauthorized
from ..store.database import Store

TICKET = "ticket"
SESSION = "session"
OFFER = "offer"
"""A TOTP secret offered to a signed-in user, enrolled only once they prove it with a code."""
CHALLENGE = "challenge"
"""A passkey ceremony's challenge (``node.passkeys``)."""
OPERATOR = "operator"
"""An administration console operator's token (``node.console_sign_in``, ``node.roles``): given
to the console's key after both factors, to a person with a role."""
PREFIX = "omfp_"
SESSION_ID = "sid"
"""Key of a session token's ``extra``: the session's id (a forward-auth cookie carries it too)."""
FACTOR = "f"
"""Key of a session token's ``extra``: the second factor the node accepted when it issued the
token, as an RFC 8176 ``amr`` value — ``otp`` (a code), ``swk`` (a push approved by the phone
app's key), ``hwk`` (a passkey); absent when there was none (self-enrolment, a bypass) and in
tokens of an earlier release."""
AUTH_TIME = "at"
"""Key of a session token's ``extra``: when the second factor was given (a push: when the phone
approved it, which may be before the token was collected); OpenID Connect's ``auth_time`` and
what ``require_fresh`` measures. Absent (a self-enrolment, a token of an earlier release): the
token's ``issued_at``."""
VIA = "via"
"""Key of a ticket's and a session token's ``extra``: ``eam`` for a sign-in Microsoft Entra ID
started (``node.oidc_eam``), whose first factor OpenMFA did not check. ``check`` refuses such a
ticket or token unless the caller asks for it by name, so only ``/v1/oidc/eam/finish`` takes
it: never self-service, never an authorization code."""
EAM = "eam"
OFFER_SECONDS = 600.0
CHALLENGE_SECONDS = 180.0
WHAT = {
    TICKET: "sign-in",
    SESSION: "session",
    OFFER: "offered secret",
    CHALLENGE: "challenge",
    OPERATOR: "operator's session",
}


@dataclass(frozen=True, slots=True)
class Grant:
    """What a ticket, session token or offer says."""

    kind: str
    user: str
    client: str
    expires_at: float
    issued_at: float = 0.0
    extra: dict[str, str] | None = None

    @property
    def session_id(self) -> str:
        """A session token's own id ("" for a token of an earlier release)."""
        return (self.extra or {}).get(SESSION_ID, "")

    @property
    def via(self) -> str:
        """What started the sign-in (``VIA``): "" for the portal's own, ``eam`` for Entra's."""
        return (self.extra or {}).get(VIA, "")

    @property
    def auth_time(self) -> float:
        """When the second factor was given (``AUTH_TIME``; else ``issued_at``)."""
        try:
            return float((self.extra or {})[AUTH_TIME])
        except (KeyError, ValueError):
            return self.issued_at

    @property
    def factor(self) -> str:
        """The second factor a session token was issued for (``FACTOR``; "" for none)."""
        return (self.extra or {}).get(FACTOR, "")

    def require_fresh(self, minutes: float, now: float) -> None:
        """Changing sign-in methods needs a second factor of the last ``minutes``."""
        if now - self.auth_time > minutes * 60:
            raise Reauthenticate(
                f"changing sign-in methods needs a sign-in of the last {minutes:g} minutes: "
                "sign in again (password and code), then repeat this"
            )


class PortalTokens:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        p = config.values["portal"]
        self.ticket_seconds = float(p["ticket_seconds"])
        self.session_seconds = float(p["session_minutes"]) * 60
        self.primary = str(p["primary"])
        self.reauth_minutes = float(p["reauth_minutes"])
        self.self_enroll = bool(p["self_enroll"])
        self.bypass_seconds = int(p["bypass_seconds"])
        self.phone_region = str(p["phone_region"]).upper()

    def e164(self, number: str) -> str:
        """A phone number as E.164 (``+31612345678``), or InvalidInput saying what is wrong;
        empty stays empty (no number)."""
        import phonenumbers

        if not number.strip():
            return ""
        try:
            parsed = phonenumbers.parse(number, self.phone_region or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            hint = "" if self.phone_region else " with its country code (+31 6 …)"
            raise InvalidInput(f"{number!r} is not a valid phone number; type it{hint}")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))

    def issue(
        self, kind: str, user: str, client: str, now: float, extra: dict[str, str] | None = None
    ) -> tuple[str, float]:
        life = {
            TICKET: self.ticket_seconds,
            OFFER: OFFER_SECONDS,
            CHALLENGE: CHALLENGE_SECONDS,
        }.get(kind, self.session_seconds)
        expires = now + life
        if kind == SESSION:  # the session's own id: what a sign-out ends (``session_ends``)
            extra = {**(extra or {}), SESSION_ID: secrets.token_urlsafe(18)}
        body = json.dumps(
            {"k": kind, "u": user, "c": client, "e": expires, "i": now, "x": extra or {}}
        ).encode()
        sealed = self.store.box.seal(body, f"portal {kind}")
        return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("="), expires

    def check(self, token: str, kind: str, client: str, now: float, via: str | None = "") -> Grant:
        """The grant ``token`` carries, if it is a ``kind`` given to ``client`` and still
        valid; otherwise Unauthorized (never saying which part was wrong). ``via``: the sign-in
        it must come from (``VIA``: "" the portal's own, ``eam`` Entra's; None either)."""
        refused = Unauthorized(
            f"the {WHAT[kind]} is not valid (expired, or not from this portal); "
            + ("start again" if kind in (OFFER, CHALLENGE) else "sign in again")
        )
        if not token.startswith(PREFIX) or len(token) > 1024:
            raise refused
        raw = token[len(PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            data = json.loads(self.store.box.open(sealed, f"portal {kind}"))
        except (ValueError, KeyFileError, OpenMfaError):
            raise refused from None
        grant = Grant(
            str(data["k"]),
            str(data["u"]),
            str(data["c"]),
            float(data["e"]),
            float(data.get("i", 0.0)),
            {str(k): str(v) for k, v in dict(data.get("x") or {}).items()},
        )
        if grant.kind != kind or grant.client != client or grant.expires_at <= now:
            raise refused
        if via is not None and grant.via != via:
            raise Unauthorized(
                f"this {WHAT[kind]} is of a sign-in Microsoft Entra ID started, good only to "
                "finish it (/v1/oidc/eam/finish); sign in at the portal for anything else"
                if grant.via == EAM
                else f"the {WHAT[kind]} is not of a sign-in Entra ID started; start it again"
            )
        return grant
