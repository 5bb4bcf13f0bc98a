"""Microsoft Entra ID's external authentication method (EAM): Entra did the first factor, sends
the person here with a signed ``id_token_hint``, and takes back an ID token that says which
second factor OpenMFA asked for. The portal parses Entra's POST and calls ``start``; after
the second factor (the portal's usual code, push or passkey step, on the ticket ``start``
gave) it calls ``finish`` and POSTs the answer back.

The checks, in order (each refusal is an ``OAuthRefused`` answer and an ``oidc.eam`` audit
record; nothing is issued):

1. OpenID Connect is on (``[oidc] issuer``); the client is registered and of kind
   ``entra-eam`` (else ``unauthorized_client``); ``redirect_uri`` is one it registered,
   exactly; ``response_type`` is ``id_token`` and the scope has ``openid``.
2. The hint is a JWT signed with RS256 by a key of the tenant's published JWKS (the client's
   ``jwks_uri``, by default Entra's for the tenant; fetched with httpx, kept 24 hours, fetched
   again once when the hint names a ``kid`` not in it; a failed fetch is remembered for
   ``REFETCH_GAP`` seconds, and one fetch runs at a time).
3. Its ``iss`` is the client's issuer (by default
   ``https://login.microsoftonline.com/<tenant>/v2.0``), its ``aud`` is OpenMFA's application
   id in the tenant (``--entra-client-id``), and its ``tid`` is the client's tenant. Its
   ``exp`` is **not** checked: Entra issues the hint already expired, by design; its ``iat``
   must be within ``HINT_SECONDS`` of now and its ``nbf`` (if any) not later than ``SKEW``
   from now, so a captured hint does not work for ever.
4. The person is found by the hint's ``tid`` + ``oid`` only (``openmfa oidc subject map`` /
   ``import``), or — only for a client added with ``--match-upn`` — on first use by the hint's
   ``preferred_username`` naming a user here, which is recorded and audited. The person must
   be enabled and have a method (``access_denied`` otherwise).
5. Only the second factor is asked, always: ``start`` gives a sign-in ticket, never a session,
   and ``finish`` takes only a session token whose second factor was given *after* ``start``
   for the same person at the same portal — a remembered browser, an older session or a
   trusted network never stands in for it. The ticket and its session are marked
   (``portal.VIA`` ``eam``): OpenMFA checked no password, so they are good for ``finish``
   only — never self-service, never an authorization code. ``finish`` checks the client is
   still registered, and takes a sealed request once. Entra gives up after about 10
   minutes, and so does the sealed request.
6. The answer: ``iss`` the discovery issuer, ``aud`` the client id Entra sent, ``sub`` the
   hint's ``sub``, the ``nonce`` echoed, ``acr`` exactly one of the values the ``claims``
   parameter asked for (the first), and ``amr`` exactly one value, from Entra's list (``face
   fido fpt hwk iris otp pop retina sc sms swk tel vbm`` — never ``pwd`` or ``mfa``), that is
   what the person used (``otp`` a code, ``swk`` a push, ``hwk`` a passkey) and that the
   request allowed; signed RS256 with the node's key (``node.oidc_keys``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeGuard

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..config import Config
from ..contract import OidcEamAnswer, OidcEamStart, OidcEamStarted
from ..errors import AccessDenied, KeyFileError, OAuthRefused, OpenMfaError, UnauthorizedClient
from ..store.changes import AuditEvent
from ..store.database import Store
from . import audit
from .accounts import Accounts
from .oidc_clients import OidcClient, OidcClients, redirect_allowed
from .oidc_keys import OidcKeys
from .oidc_subjects import OidcSubjects
from .oidc_tokens import issuer_of, second_factor
from .portal import EAM, TICKET, VIA, Grant, PortalTokens
from .portal_policy import OIDC, Purpose

log = logging.getLogger(__name__)

ENTRA_AMR = (
    "face",
    "fido",
    "fpt",
    "hwk",
    "iris",
    "otp",
    "pop",
    "retina",
    "sc",
    "sms",
    "swk",
    "tel",
    "vbm",
)
REQUEST_SECONDS = 600.0
"""How long a started EAM sign-in may take (Entra gives up after about 10 minutes)."""
JWKS_SECONDS = 86400.0
REFETCH_GAP = 60.0
"""An unknown ``kid`` fetches a tenant's keys again at most this often (a flood of forged
hints must not become a flood of fetches)."""
SEALED = "oidc eam"
HINT_SECONDS = 600.0
"""A hint's ``iat`` may be this far in the past (Entra sends it at once)."""
SKEW = 60.0
"""Seconds a hint's ``iat`` and ``nbf`` may be ahead of this node's clock."""
FINISHED_KEPT = 100_000
"""At most this many finished requests are remembered (each until its expiry)."""


KEYS_UNREADABLE = "the tenant's signing keys could not be read here; try again in a minute"
"""The refusal when a tenant's JWKS cannot be fetched (the address and cause are logged)."""


class TenantKeys:
    """Entra tenants' signing keys by JWKS URL, kept ``JWKS_SECONDS``."""

    def __init__(self, clock: Callable[[], float] = time.time, timeout: float = 5.0) -> None:
        self.clock = clock
        self.timeout = timeout
        self._kept: dict[str, tuple[float, KeySet]] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        """A failed fetch by URL: when, and why (refused again until ``REFETCH_GAP``)."""
        self._lock = threading.Lock()
        """One fetch at a time (an unreachable tenant holds one thread, not every one)."""

    def _fetch(self, uri: str, now: float) -> KeySet:
        failed = self._failed.get(uri)
        if failed is not None and now - failed[0] < REFETCH_GAP:
            raise OAuthRefused(KEYS_UNREADABLE)
        try:
            resp = httpx.get(uri, timeout=self.timeout, follow_redirects=False)
            resp.raise_for_status()
            keys = KeySet.import_key_set(resp.json())
        except (httpx.HTTPError, ValueError, JoseError, RecursionError) as exc:
            self._failed[uri] = (self.clock(), type(exc).__name__)
            # Where and why go to the log only: the refusal goes back to Entra ID and the
            # person's browser, which need no address or exception of this node's.
            log.warning("the tenant's keys could not be read from %s (%s)", uri, type(exc).__name__)
            raise OAuthRefused(KEYS_UNREADABLE) from None
        self._failed.pop(uri, None)
        self._kept[uri] = (self.clock(), keys)
        return keys

    def _stale(self, uri: str, kid: str, now: float) -> KeySet | None:
        """The kept keys, or None when they must be fetched (none, old, or no ``kid``)."""
        kept = self._kept.get(uri)
        if kept is None or now - kept[0] > JWKS_SECONDS:
            return None
        if not any(k.kid == kid for k in kept[1].keys) and now - kept[0] > REFETCH_GAP:
            return None
        return kept[1]

    def for_kid(self, uri: str, kid: str) -> KeySet:
        kept = self._stale(uri, kid, self.clock())
        if kept is not None:
            return kept
        with self._lock:  # another thread may have fetched them meanwhile
            now = self.clock()
            kept = self._stale(uri, kid, now)
            return kept if kept is not None else self._fetch(uri, now)


def _kid(token: str) -> str:
    try:
        head = token.split(".", 1)[0]
        said = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        return str(said.get("kid", ""))
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise OAuthRefused("id_token_hint is not a JWT") from None


def _wanted(claims_param: str) -> tuple[list[str], list[str]]:
    """(acr values, amr values) the request's ``claims`` parameter asks for in the ID token."""
    if not claims_param:
        return [], []
    try:
        said = json.loads(claims_param)
        idt = said.get("id_token") or {}
        acr = [str(v) for v in (idt.get("acr") or {}).get("values") or []]
        amr = [str(v) for v in (idt.get("amr") or {}).get("values") or []]
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise OAuthRefused(
            "the claims parameter is not the JSON object OpenID Connect §5.5 says"
        ) from None
    return acr, amr


class EntraEam:
    def __init__(
        self,
        store: Store,
        config: Config,
        accounts: Accounts,
        portal: PortalTokens,
        keys: OidcKeys,
        tenant_keys: TenantKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.accounts = accounts
        self.portal = portal
        self.keys = keys
        self.clients = OidcClients(store)
        self.subjects = OidcSubjects(store)
        self.tenant_keys = tenant_keys or TenantKeys(clock)
        self.clock = clock
        self._finished: OrderedDict[bytes, float] = OrderedDict()
        """Sealed requests finished, by digest, until their expiry (each is finished once)."""
        self._finished_lock = threading.Lock()

    def _audit(self, result: str, reason: str = "", **what: str) -> None:
        audit.record(self.store, AuditEvent("oidc.eam", result, reason=reason, **what))

    def start(self, r: OidcEamStart, portal: str, request_id: str) -> OidcEamStarted:
        what = {"client": portal, "request_id": request_id}
        try:
            issuer_of(self.config)
            client = self.clients.get(r.client_id)
            if client.kind != "entra-eam":
                raise UnauthorizedClient("this client is an application, not Entra ID's method")
            if not redirect_allowed(client, r.redirect_uri):
                raise OAuthRefused("redirect_uri is not one this client registered")
            if "openid" not in r.scope.split():
                raise OAuthRefused("scope must include openid")
            acr, amr = _wanted(r.claims)
            hint = self._hint(client, r.id_token_hint)
            user = self._person(client, hint, portal, request_id)
            what["user_name"] = user
            view = self.accounts.get_user(user)
            kinds = sorted({m.kind for m in self.accounts.list_methods(user)})
            if not view.enabled:
                raise AccessDenied("this person may not sign in (disabled)")
            if not kinds:
                raise AccessDenied("this person has no sign-in method to ask for")
        except OAuthRefused as refused:
            self._audit(
                "refused",
                refused.code,
                detail=f"{r.client_id[:64]}: {refused.message}"[:255],
                **what,
            )
            raise
        now = self.clock()
        purpose = Purpose(OIDC, client.name).extra()  # its policy rule: the EAM client's
        ticket, _ = self.portal.issue(TICKET, user, portal, now, {VIA: EAM, **purpose})
        request = {
            "u": user,
            "c": client.client_id,
            "s": str(hint["sub"]),
            "n": r.nonce,
            "acr": acr[0] if acr else "possessionorinherence",
            "amr": [v for v in amr if v in ENTRA_AMR] if amr else list(ENTRA_AMR),
            "r": r.redirect_uri,
            "p": portal,
            "i": now,
            "e": now + REQUEST_SECONDS,
        }
        sealed = self.store.box.seal(json.dumps(request).encode(), SEALED)
        self._audit("started", "ok", detail=client.name, **what)
        return OidcEamStarted(
            user=user,
            display_name=view.display_name,
            ticket=ticket,
            request=base64.urlsafe_b64encode(sealed).decode().rstrip("="),
            expires_at=now + REQUEST_SECONDS,
            prefer=self.accounts.default_kind(user),
            kinds=kinds,
        )

    def _hint(self, client: OidcClient, hint: str) -> dict[str, Any]:
        keys = self.tenant_keys.for_kid(client.jwks_uri, _kid(hint))
        try:
            claims = dict(jwt.decode(hint, keys, algorithms=["RS256"]).claims)
        except (JoseError, ValueError, TypeError, RecursionError):
            raise OAuthRefused("id_token_hint's signature is not the tenant's") from None
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if claims.get("iss") != client.hint_issuer:
            raise OAuthRefused("id_token_hint is from another issuer")
        if client.entra_client_id not in [str(a).lower() for a in auds]:
            raise OAuthRefused("id_token_hint is for another application")
        if str(claims.get("tid", "")).lower() != client.entra_tenant:
            raise OAuthRefused("id_token_hint is from another tenant")
        if not claims.get("oid") or not claims.get("sub"):
            raise OAuthRefused("id_token_hint names no oid or sub")
        now, iat, nbf = self.clock(), claims.get("iat"), claims.get("nbf", 0)
        if not _number(iat) or not now - HINT_SECONDS <= iat <= now + SKEW:
            raise OAuthRefused("id_token_hint was not issued in the last 10 minutes (iat)")
        if not _number(nbf) or float(nbf) > now + SKEW:
            raise OAuthRefused("id_token_hint is not valid yet (nbf)")
        return claims  # exp is not checked: Entra sends the hint already expired

    def _person(self, client: OidcClient, hint: dict[str, Any], portal: str, rid: str) -> str:
        tid, oid = str(hint["tid"]).lower(), str(hint["oid"]).lower()
        user = self.subjects.find(tid, oid)
        if user is None and client.match_upn and hint.get("preferred_username"):
            upn = str(hint["preferred_username"])
            user = self.subjects.match_upn(tid, oid, upn, portal, rid)
        if user is None:
            raise AccessDenied("this Entra ID account is not mapped to anyone here")
        return user

    def finish(self, session: Grant, sealed: str, portal: str, request_id: str) -> OidcEamAnswer:
        what = {"client": portal, "request_id": request_id, "user_name": session.user}
        try:
            issuer = issuer_of(self.config)
            req = self._open(sealed, portal)
            if session.via != EAM:
                raise AccessDenied("this session is not of the sign-in Entra ID started")
            if req["u"] != session.user:
                raise AccessDenied("this session is another person's than the request's")
            if session.auth_time < float(req["i"]):
                raise AccessDenied("the second factor must be given for this request, after it")
            factor = second_factor(session.factor)
            if factor not in req["amr"]:
                raise AccessDenied(f"Entra did not ask for {factor}")
            client = self.clients.get(str(req["c"]))  # still registered (else refused)
            if client.kind != "entra-eam":
                raise UnauthorizedClient("this client is an application, not Entra ID's method")
            self._first_finish(sealed, float(req["e"]))
        except OAuthRefused as refused:
            self._audit("refused", refused.code, detail=refused.message[:255], **what)
            raise
        now = self.clock()
        claims = {
            "iss": issuer,
            "aud": req["c"],
            "sub": req["s"],
            "iat": int(now),
            "exp": int(now + self.keys.token_seconds),
            "acr": req["acr"],
            "amr": [factor],
        }
        if req["n"]:
            claims["nonce"] = req["n"]
        token = self.keys.sign(claims, "RS256")
        self._audit("issued", "ok", detail=f"amr={factor}", **what)
        return OidcEamAnswer(id_token=token, redirect_uri=str(req["r"]))

    def _open(self, sealed: str, portal: str) -> dict[str, Any]:
        refused = OAuthRefused("the sign-in request is not valid (expired, or not this portal's)")
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            req: dict[str, Any] = json.loads(self.store.box.open(raw, SEALED))
        except (ValueError, KeyFileError, OpenMfaError):
            raise refused from None
        if req.get("p") != portal or float(req.get("e", 0)) <= self.clock():
            raise refused
        return req

    def _first_finish(self, sealed: str, expires: float) -> None:
        """Remember a sealed request as finished until it expires; refused if it was."""
        key, now = hashlib.sha256(sealed.encode()).digest(), self.clock()
        with self._finished_lock:
            while self._finished and (
                next(iter(self._finished.values())) <= now or len(self._finished) >= FINISHED_KEPT
            ):
                self._finished.popitem(last=False)
            if key in self._finished:
                raise OAuthRefused("this sign-in request was finished already; start again")
            self._finished[key] = expires


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
