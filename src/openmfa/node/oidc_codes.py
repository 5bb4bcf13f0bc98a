"""The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1),
decided at the node: a portal host turns a person's session into a code and a code into an ID
token only by asking here, so any portal host redeems what another issued, and a DMZ host holds
nothing that proves a second factor.

Invariants owned here:
- codes live at the farm's master only, like push requests (``NotMaster`` elsewhere: the SDK's
  clients follow it), stored as their SHA-256; a code is 256 random bits, good for
  ``[oidc] code_seconds`` (60), and is spent by one conditional update (``used_at`` from NULL),
  so it is redeemed once in the whole farm — a second try is ``invalid_grant``, audited;
- a code is issued only for a client's exactly registered redirect URI, with an S256 PKCE
  challenge (every client, public or not), a scope with ``openid``, and a session whose second
  factor the node recorded (``node.oidc_tokens``), of the portal's own sign-in (never one
  Entra ID started: ``portal.VIA``, no password checked); ``max_age`` refuses an older one;
- redeeming checks, before anything is spent: the client (its secret in constant time; a
  public client sends none), that the code is this client's and unexpired, the very redirect
  URI, and SHA-256(code_verifier) against the challenge (RFC 7636 §4.6); then the person must
  still exist, be enabled and not locked;
- a code and the audit record of its issue are written in one transaction; redeeming reads
  everything (client, code, person, signing key) in one, signs, then spends the code and writes
  its audit record in one write transaction: a code spent meanwhile by another request is
  ``invalid_grant`` and the token signed for it is thrown away, never sent;
- every refusal is an ``OAuthRefused`` with its OAuth code, and an audit record
  (``oidc.code``/``oidc.token``, reason = the code); nothing is issued on a refusal, and no
  code, secret or verifier is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from ..config import Config
from ..contract import (
    OidcClientCheck,
    OidcClientChecked,
    OidcCodeIssued,
    OidcCodeRequest,
    OidcProviderInfo,
    OidcTokenRequest,
)
from ..contract import OidcTokens as OidcTokenAnswer
from ..errors import (
    AccessDenied,
    InvalidGrant,
    NotFound,
    NotMaster,
    OAuthRefused,
    UnauthorizedClient,
)
from ..store import tables as t
from ..store.changes import AuditEvent
from ..store.database import Store
from ..store.role import read_role
from . import audit
from .accounts import Accounts
from .oidc_clients import OidcClients, redirect_allowed
from .oidc_keys import OidcKeys
from .oidc_tokens import app_claims, discovery, issuer_of, second_factor, subject
from .policy import verify_policy
from .portal import Grant
from .portal_policy import OIDC, PortalPolicy, Purpose

SWEEP_SECONDS = 60.0
"""How often issuing a code also deletes the codes an hour past their expiry."""
_C = t.oidc_codes.c
# The statements of every round, built once (building one costs more than running it).
_INSERT = insert(t.oidc_codes)
_CODE = select(t.oidc_codes).where(_C.code_hash == bindparam("code_hash"))
_SPEND = (
    update(t.oidc_codes)
    .where(_C.code_hash == bindparam("hash"), _C.used_at.is_(None))
    .values(used_at=bindparam("now"))
)
_AUDIT = insert(t.audit)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


class OidcCodes:
    def __init__(
        self,
        store: Store,
        config: Config,
        accounts: Accounts,
        keys: OidcKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.accounts = accounts
        self.keys = keys
        self.clients = OidcClients(store)
        self.policy = PortalPolicy(store, verify_policy(config))
        self.code_seconds = float(config.values["oidc"]["code_seconds"])
        self.token_seconds = float(config.values["oidc"]["id_token_seconds"])
        self.clock = clock
        self._sweep_at = 0.0

    def provider(self) -> OidcProviderInfo:
        issuer = issuer_of(self.config)
        return OidcProviderInfo(issuer=issuer, discovery=discovery(issuer), jwks=self.keys.jwks())

    def _step_up(self, session: Grant, app: str, address: str) -> None:
        """``access_denied`` (the person signs in again, for this application) when the session
        was signed in for something else and does not give what this application's policy
        rule asks (``PortalPolicy.step_up``: a method kind it allows, the PIN it wants, a
        numbered push where it wants one), the rule evaluated from the browser's ``address``
        as the portal reports it (as on its sign-in calls)."""
        groups = self.accounts.get_user(session.user).groups
        rule = self.policy.step_up(session, Purpose(OIDC, app), address, groups)
        if rule is not None:
            raise AccessDenied(
                f"this application's policy rule {rule.name} asks for another kind of second "
                "factor than this sign-in's: sign in again for it"
            )

    def _require_master(self, conn: Connection) -> None:
        role = read_role(self.store, conn)
        if not role.writes:
            raise NotMaster(
                "authorization codes live at the farm's master; ask it at "
                f"{role.master_url or '?'}",
                master_url=role.master_url,
            )

    def _audit(self, action: str, result: str, **what: str) -> None:
        audit.record(self.store, AuditEvent(action, result, **what))

    def _audit_in(self, conn: Connection, action: str, result: str, **what: str) -> None:
        """An audit record in ``conn``'s write transaction (with what it records)."""
        row = AuditEvent(action, result, **what).row(self.store.node_name, time.time())
        conn.execute(_AUDIT, row)

    # -- the authorization endpoint --------------------------------------------------------

    def check(self, r: OidcClientCheck, portal: str, request_id: str) -> OidcClientChecked:
        """The client of an authorization request and its redirect URI, before the person
        signs in: ``invalid_client`` for an unknown one, ``invalid_request`` for a redirect URI
        it did not register (audited; the portal shows a page, never redirects)."""
        try:
            issuer_of(self.config)
            client = self.clients.get(r.client_id)
            if not redirect_allowed(client, r.redirect_uri):
                raise OAuthRefused("redirect_uri is not one this client registered")
        except OAuthRefused as refused:
            what = {"client": portal, "request_id": request_id}
            self._audit(
                "oidc.authorize", "refused", reason=refused.code, detail=r.client_id[:64], **what
            )
            raise
        return OidcClientChecked(
            client_id=client.client_id, name=client.name, kind=client.kind, public=client.public
        )

    def issue(
        self, session: Grant, r: OidcCodeRequest, portal: str, request_id: str, address: str = ""
    ) -> OidcCodeIssued:
        """A one-use code for the person of ``session`` (checked by the caller: valid, not
        ended), for client ``r.client_id`` at ``r.redirect_uri``; ``address``: the browser's,
        as the portal reports it (policy rules' networks match it)."""
        what = {"user_name": session.user, "client": portal, "request_id": request_id}
        try:
            issuer_of(self.config)
            with self.store.read() as conn:
                self._require_master(conn)
                client = self.clients.get(r.client_id, conn)
            if client.kind != "app":
                raise UnauthorizedClient("this client uses Entra ID's profile, not codes")
            if not redirect_allowed(client, r.redirect_uri):
                raise OAuthRefused("redirect_uri is not one this client registered")
            if "openid" not in r.scope.split():
                raise OAuthRefused("scope must include openid")
            if session.via:
                raise AccessDenied("a sign-in Entra ID started gives no code: sign in here")
            factor = second_factor(session.factor)
            self._step_up(session, client.name, address)
            now = self.clock()
            if r.max_age is not None and now - session.auth_time > r.max_age:
                raise AccessDenied("the sign-in is older than max_age: sign in again")
        except OAuthRefused as refused:
            self._audit(
                "oidc.code", "refused", reason=refused.code, detail=r.client_id[:64], **what
            )
            raise
        code = secrets.token_urlsafe(32)
        granted = {
            "user": session.user,
            "redirect_uri": r.redirect_uri,
            "challenge": r.code_challenge,
            "nonce": r.nonce,
            "scope": r.scope,
            "factor": factor,
            "auth_time": session.auth_time,
            "portal": portal,
        }
        expires = now + self.code_seconds
        with self.store.write() as conn:
            if now >= self._sweep_at:  # codes an hour past their expiry, once a minute
                conn.execute(delete(t.oidc_codes).where(t.oidc_codes.c.expires_at < now - 3600))
                self._sweep_at = now + SWEEP_SECONDS
            row = {"code_hash": _hash(code), "client_id": client.client_id, "granted": granted}
            conn.execute(_INSERT, {**row, "expires_at": expires, "used_at": None})
            self._audit_in(conn, "oidc.code", "issued", detail=client.name, **what)
        return OidcCodeIssued(code=code, expires_at=expires)

    # -- the token endpoint ----------------------------------------------------------------

    def redeem(self, r: OidcTokenRequest, portal: str, request_id: str) -> OidcTokenAnswer:
        """The ID token for a code, once; ``OAuthRefused`` (audited) otherwise."""
        what = {"client": portal, "request_id": request_id}
        try:
            issuer = issuer_of(self.config)
            with self.store.read() as conn:
                self._require_master(conn)
                client = self.clients.authenticate(r.client_id, r.client_secret, conn)
                granted = self._granted(conn, r, client.client_id)
                try:
                    user, user_id = self.accounts.user_in(conn, str(granted["user"]))
                    what["user_name"] = user.name
                    if not user.enabled or (user.locked_until or 0) > self.clock():
                        raise InvalidGrant("the person may not sign in now (disabled or locked)")
                except (NotFound, InvalidGrant):
                    self._spend(r.code)  # refused for the person: the code is spent too
                    raise
                now = self.clock()
                claims = app_claims(
                    issuer=issuer,
                    client_id=client.client_id,
                    sub=subject(self.store, user_id, user.created_at),
                    user=user,
                    granted=granted,
                    now=now,
                    lifetime=self.token_seconds,
                )
                token = self.keys.sign(claims, conn=conn)
            amr = "+".join(claims["amr"])
            self._spend(r.code, "oidc.token", detail=f"{client.name} amr={amr}", **what)
        except NotFound:
            self._audit("oidc.token", "refused", reason="invalid_grant", **what)
            raise InvalidGrant("the person of this code is gone") from None
        except OAuthRefused as refused:
            self._audit(
                "oidc.token", "refused", reason=refused.code, detail=r.client_id[:64], **what
            )
            raise
        return OidcTokenAnswer(
            id_token=token,
            access_token=secrets.token_urlsafe(32),
            expires_in=int(self.token_seconds),
            scope=str(granted["scope"]),
        )

    def _granted(self, conn: Connection, r: OidcTokenRequest, client_id: str) -> dict[str, Any]:
        """The code's grant, after every check of the code (not spent: ``_spend``)."""
        row = conn.execute(_CODE, {"code_hash": _hash(r.code)}).first()
        if row is None or row.client_id != client_id:
            raise InvalidGrant("the code is not valid for this client")
        if row.used_at is not None:
            raise InvalidGrant("the code was used already")
        if row.expires_at <= self.clock():
            raise InvalidGrant("the code expired")
        granted: dict[str, Any] = dict(row.granted)
        if r.redirect_uri != granted["redirect_uri"]:
            raise InvalidGrant("redirect_uri is not the one the code was issued for")
        challenge = str(granted["challenge"]).encode("utf-8", "replace")
        if not hmac.compare_digest(s256(r.code_verifier).encode(), challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge")
        return granted

    def _spend(self, code: str, action: str = "", **what: str) -> None:
        """Spend ``code`` by one conditional update (``used_at`` from NULL), with the audit
        record ``action`` when given, in one write transaction; ``invalid_grant`` (nothing
        written) if another request spent it first."""
        with self.store.write() as conn:
            spent = conn.execute(_SPEND, {"hash": _hash(code), "now": self.clock()})
            if spent.rowcount != 1:
                raise InvalidGrant("the code was used already")
            if action:
                self._audit_in(conn, action, "issued", **what)
