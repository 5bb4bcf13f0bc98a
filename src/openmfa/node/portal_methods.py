"""What a signed-in user changes about their own sign-in methods in the User Portal: a new
authenticator app (offered, then saved once proven with a code) and new backup codes. The SDK's
portal routes check the session (and that it is fresh), then call one method here.

Rules owned here:
- an authenticator app's secret is offered sealed (``node.portal``'s ``offer``, to the portal
  and user it was made for, for ten minutes) and saved only when a code of it is right now,
  with the ``[enroll]`` digits, period and algorithm it was offered with;
- new backup codes replace the old ones: every backup-codes method of the user is removed
  before the new one is made, so the old codes stop working;
- a person renames only their own methods (another's is NotFound, as if it did not exist); a
  name is 1 to ``NAME_MAX`` printable characters (no control or invisible formatting
  characters), trimmed and NFC-normalised; it travels in a ``method.label`` record, written
  only once the data set is at format 9.
"""

from __future__ import annotations

import base64
import secrets
import time
import unicodedata
from typing import Any

from anyio import to_thread

from ..config import Config
from ..contract import METHOD_NAME_MAX as NAME_MAX
from ..contract import NAME_RE, Enrollment, MethodView, PortalTotpOffer
from ..core.totp import verify as totp_verify
from ..errors import InvalidInput, NotFound, Unauthorized
from ..store import formats
from ..store.changes import AuditEvent, Change
from .accounts import SECRET_BYTES, Accounts, Actor, key_uri
from .audit import NOWHERE, Origin
from .portal import OFFER, PortalTokens

_NOT_PRINTED = frozenset(["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])
"""Unicode categories a name never holds: controls, every invisible format character (also
the tags U+E0000-E007F, which ``NAME_RE``'s list misses), surrogates, private use, unassigned,
and line and paragraph separators."""


def check_method_name(name: str) -> str:
    """A method's name as a person types it: NFC, trimmed, 1 to ``NAME_MAX`` printable
    characters with no control or invisible formatting characters ('/' is allowed)."""
    name = unicodedata.normalize("NFC", name).strip()
    if (
        not name
        or len(name) > NAME_MAX
        or NAME_RE.fullmatch(name.replace("/", "-")) is None
        or any(unicodedata.category(ch) in _NOT_PRINTED for ch in name)
    ):
        raise InvalidInput(
            f"a method's name must be 1 to {NAME_MAX} printable characters "
            "(no control or invisible formatting characters)"
        )
    return name


class PortalMethods:
    def __init__(self, accounts: Accounts, portal: PortalTokens, config: Config) -> None:
        self.accounts = accounts
        self.portal = portal
        self.config = config

    def _enroll(self) -> dict[str, Any]:
        enroll: dict[str, Any] = self.config.values["enroll"]
        return enroll

    def totp_offer(self, user: str, client: str, label: str) -> PortalTotpOffer:
        """A new authenticator app's secret for ``user``, shown once, and the sealed offer
        (for ``client`` alone) to confirm it with."""
        e = self._enroll()
        algorithm = str(e["algorithm"]).upper()
        key = secrets.token_bytes(SECRET_BYTES[algorithm])
        secret = base64.b32encode(key).decode().rstrip("=")
        extra = {"s": secret, "l": label}
        offer, expires = self.portal.issue(OFFER, user, client, time.time(), extra)
        uri = key_uri(
            "totp",
            key,
            issuer=str(e["issuer"]),
            account=user,
            digits=int(e["digits"]),
            period=int(e["period"]),
            algorithm=algorithm,
        )
        return PortalTotpOffer(offer=offer, secret=secret, otpauth_uri=uri, expires_at=expires)

    async def totp_confirm(
        self,
        user: str,
        client: str,
        request_id: str,
        offer: str,
        code: str,
        origin: Origin = NOWHERE,
    ) -> MethodView:
        """The code the app shows for ``offer``: then, and only then, the method is saved
        (audited as ``client``'s, ``request_id``, from ``origin``). An offer of another portal
        or user, or expired: Unauthorized; a wrong code: InvalidInput."""
        now = time.time()
        grant = self.portal.check(offer, OFFER, client, now)
        if grant.user != user or not grant.extra:
            raise Unauthorized("this offer is not the signed-in user's; start again")
        e = self._enroll()
        secret = grant.extra["s"]
        key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        digits, period, algorithm = int(e["digits"]), int(e["period"]), str(e["algorithm"]).upper()
        match = totp_verify(
            key, code, now, last_step=-1, digits=digits, period=period, algorithm=algorithm
        )
        if match is None:
            raise InvalidInput(
                "that is not the code the app shows for this secret; check the phone's clock "
                "and type the code it shows now"
            )
        label = grant.extra["l"]
        done = await to_thread.run_sync(
            lambda: self.accounts.enroll(
                user,
                "totp",
                secret=secret,
                digits=digits,
                period=period,
                algorithm=algorithm,
                label=label,
                actor=Actor(client=client, request_id=request_id, origin=origin),
            )
        )
        return done.method

    async def renew_backup_codes(
        self, user: str, client: str, request_id: str, origin: Origin = NOWHERE
    ) -> Enrollment:
        """New backup codes for ``user``, shown once; the old ones stop working (audited from
        ``origin``)."""
        actor = Actor(client=client, request_id=request_id, origin=origin)

        def renew() -> Enrollment:
            for m in self.accounts.list_methods(user):
                if m.kind == "backup-codes":
                    self.accounts.remove_method(user, m.id, actor)
            return self.accounts.enroll(user, "backup-codes", label="backup codes", actor=actor)

        return await to_thread.run_sync(renew)

    def rename(self, user: str, method_id: str, name: str, actor: Actor) -> MethodView:
        """``user`` names their method ``method_id`` (another person's: NotFound)."""
        label = check_method_name(name)
        method = next((m for m in self.accounts.list_methods(user) if m.id == method_id), None)
        if method is None:
            raise NotFound(f"user {user!r} has no method {method_id!r}")
        with self.accounts.store.read() as conn:
            formats.require(conn, formats.METHOD_NAMES_FORMAT, "method names")
        event = AuditEvent(
            "method.rename",
            "ok",
            user_name=user,
            client=actor.client,
            method_id=method_id,
            request_id=actor.request_id,
        )
        self.accounts.writer.commit(
            [Change("method.label", {"id": method_id, "label": label})], [event]
        )
        method.label = label
        return method
