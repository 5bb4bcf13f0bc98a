"""The keys that sign OpenID Connect ID tokens, on the nodes only (a portal host in a DMZ holds
none, so a stolen one cannot mint proof of a second factor), and the JWKS that publishes them.

Invariants owned here:
- a key's private half exists only sealed at rest (AES-GCM under the data key, bound to
  ``oidc-key:KID``) and in this process's memory; it is never printed or sent;
- keys are data (``oidc.key`` records, data format 8): they replicate to every node of a farm,
  are in every backup and survive upgrades, rollbacks and restores;
- rotation overlaps (RFC 7517 §5 key sets; Microsoft Entra ID caches a provider's keys for
  24 hours): a new key is published ``[oidc] publish_ahead_hours`` (48) before it signs; the
  key it replaces signs until then and stays published until the last token it signed has
  expired (``[oidc] id_token_seconds`` and ``SKEW`` later). The first key of an algorithm signs
  at once;
- at any moment one key of each algorithm signs: the one whose ``signs_from`` is the latest not
  in the future;
- a key's private half is opened (unsealed and parsed: the RSA key check costs milliseconds) once
  per process and kept by ``kid``; each signature reads the key listing (not the sealed
  halves), so a new or replayed key signs when its time comes, and an opened key whose row is
  gone (removed, or replaced by a farm's snapshot) is dropped at the next read of the keys;
- ``kid`` is the key's JWK thumbprint (RFC 7638); an RSA key is published with a self-signed
  certificate in ``x5c`` (RFC 7517 §4.7), which Entra ID wants; RS256 keys are 2048-bit RSA,
  ES256 keys P-256 (RFC 7518 §3.3, §3.4).
"""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Connection, bindparam, select

from ..config import Config
from ..errors import InvalidInput, NotReady
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import OIDC_FORMAT, require

ALGS = ("RS256", "ES256")
SKEW = 300.0
"""Seconds a retired key stays published after its last token's expiry (relying parties'
clocks differ)."""
CERT_DAYS = 3650
_K = t.oidc_keys.c
_LISTING = select(_K.kid, _K.alg, _K.public_jwk, _K.cert, _K.created_at, _K.signs_from).order_by(
    _K.signs_from
)
"""Every key but its sealed half, by ``signs_from`` (built once: read for every signature)."""
_SEALED = select(_K.private_enc).where(_K.kid == bindparam("kid"))


@dataclass(frozen=True, slots=True)
class KeyState:
    """A signing key as listed: ``state`` is ``signing``, ``next`` (published, signs from
    ``signs_from``), ``retiring`` (published until ``published_until``) or ``expired``."""

    kid: str
    alg: str
    created_at: float
    signs_from: float
    state: str
    published_until: float | None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _certificate(key: rsa.RSAPrivateKey, kid: str, now: float) -> bytes:
    """A self-signed certificate of ``key`` (DER): what ``x5c`` carries; nothing checks its
    chain, so its names say only what it is."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"OpenMFA ID token key {kid}")])
    start = datetime.datetime.fromtimestamp(now - 86400, tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


class OidcKeys:
    def __init__(
        self, store: Store, config: Config, clock: Callable[[], float] = time.time
    ) -> None:
        o = config.values["oidc"]
        self.store = store
        self.writer = ChangeWriter(store)
        self.publish_ahead = float(o["publish_ahead_hours"]) * 3600
        self.token_seconds = float(o["id_token_seconds"])
        self.clock = clock
        self._private: dict[str, RSAKey | ECKey] = {}
        """Opened private keys by kid (a kid names one key for ever: its thumbprint)."""

    # -- writing ---------------------------------------------------------------------------

    def rotate(self, alg: str = "RS256", client: str = "cli") -> KeyState:
        """A new key of ``alg``: it signs at once if it is the first, otherwise from
        ``publish_ahead`` seconds on. Keys no token can need any more are removed."""
        if alg not in ALGS:
            raise InvalidInput(f"--alg must be one of {', '.join(ALGS)}, not {alg!r}")
        now = self.clock()
        with self.store.read() as conn:
            require(conn, OIDC_FORMAT, "OpenID Connect signing keys")
        rows = self._rows()
        first = not any(r["alg"] == alg for r in rows)
        # The first key signs at once (a minute back: another node's clock may be behind).
        signs_from = now - 60 if first else now + self.publish_ahead
        key: RSAKey | ECKey
        if alg == "RS256":
            key = RSAKey.generate_key(2048, private=True, auto_kid=False)
        else:
            key = ECKey.generate_key("P-256", private=True, auto_kid=False)
        kid = key.thumbprint()
        public = dict(key.as_dict(private=False))
        cert = ""
        if isinstance(key, RSAKey):
            raw = key.private_key
            assert isinstance(raw, rsa.RSAPrivateKey)
            cert = _b64(_certificate(raw, kid, now))
        sealed = self.store.box.seal(key.as_pem(private=True), f"oidc-key:{kid}")
        changes = [
            Change(
                "oidc.key",
                {
                    "kid": kid,
                    "alg": alg,
                    "public_jwk": public,
                    "private_enc": sealed.hex(),
                    "cert": cert,
                    "at": now,
                    "signs_from": signs_from,
                },
            )
        ]
        changes += [
            Change("oidc.key.remove", {"kid": s.kid})
            for s in self._states(rows, now)
            if s.state == "expired"
        ]
        detail = f"{alg} key {kid}, signs from {signs_from:.0f}"
        self.writer.commit(
            changes, [AuditEvent("oidc.key.rotate", "ok", client=client, detail=detail)]
        )
        return KeyState(kid, alg, now, signs_from, "signing" if first else "next", None)

    def ensure(self, alg: str = "RS256", client: str = "cli") -> None:
        """A first key of ``alg`` if there is none (it signs at once)."""
        if not any(r["alg"] == alg for r in self._rows()):
            self.rotate(alg, client)

    # -- reading ---------------------------------------------------------------------------

    def _rows(self, conn: Connection | None = None) -> list[dict[str, Any]]:
        """Every key, by ``signs_from``: all but the sealed private half (``_open`` reads it)."""
        if conn is None:
            with self.store.read() as c:
                return self._rows(c)
        rows = [dict(r._mapping) for r in conn.execute(_LISTING)]
        self._forget({r["kid"] for r in rows})
        return rows

    def _forget(self, present: set[str]) -> None:
        """Drop the opened keys whose rows are gone."""
        for kid in list(self._private):  # a copy: other threads add keys meanwhile
            if kid not in present:
                self._private.pop(kid, None)

    def _open(self, conn: Connection, kid: str, alg: str) -> RSAKey | ECKey:
        """The private half of ``kid``, unsealed and parsed once per process."""
        key = self._private.get(kid)
        if key is None:
            sealed = conn.scalar(_SEALED, {"kid": kid})
            if sealed is None:  # removed since the listing was read
                raise NotReady(f"the {alg} key {kid} is gone; try again")
            pem = self.store.box.open(sealed, f"oidc-key:{kid}")
            key = RSAKey.import_key(pem) if alg == "RS256" else ECKey.import_key(pem)
            self._private[kid] = key
        return key

    def _states(self, rows: list[dict[str, Any]], now: float) -> list[KeyState]:
        out: list[KeyState] = []
        for alg in ALGS:
            mine = [r for r in rows if r["alg"] == alg]  # by signs_from
            current = max((i for i, r in enumerate(mine) if r["signs_from"] <= now), default=-1)
            for i, r in enumerate(mine):
                until = None
                if i < current:  # replaced: its last token was signed when the next one began
                    until = mine[i + 1]["signs_from"] + self.token_seconds + SKEW
                state = (
                    "signing"
                    if i == current
                    else "next"
                    if i > current
                    else "retiring"
                    if until is not None and until > now
                    else "expired"
                )
                out.append(KeyState(r["kid"], alg, r["created_at"], r["signs_from"], state, until))
        return out

    def listing(self) -> list[KeyState]:
        return self._states(self._rows(), self.clock())

    def jwks(self) -> dict[str, Any]:
        """The published keys (RFC 7517 §5): every key but the expired, each with ``kid``,
        ``use``, ``alg`` and, for RSA, ``x5c``."""
        rows = self._rows()
        published = {s.kid for s in self._states(rows, self.clock()) if s.state != "expired"}
        keys = []
        for r in rows:
            if r["kid"] not in published:
                continue
            jwk = {**dict(r["public_jwk"]), "kid": r["kid"], "use": "sig", "alg": r["alg"]}
            if r["cert"]:
                jwk["x5c"] = [r["cert"]]
            keys.append(jwk)
        return {"keys": keys}

    def sign(
        self, claims: dict[str, Any], alg: str = "RS256", conn: Connection | None = None
    ) -> str:
        """``claims`` as a JWT (RFC 7519) signed by the key of ``alg`` that signs now (read in
        ``conn``'s transaction when given); the first key is made here if there is none yet
        (on the master: a write)."""
        if conn is None:
            with self.store.read() as c:
                return self.sign(claims, alg, c)
        rows = self._rows(conn)
        if not any(r["alg"] == alg for r in rows):
            self.ensure(alg, "oidc")
            with self.store.read() as c:  # conn's snapshot is older than the new key
                return self.sign(claims, alg, c)
        states = self._states(rows, self.clock())
        signing = next((s for s in states if s.alg == alg and s.state == "signing"), None)
        if signing is None:  # only a first key whose node's clock is ahead of this one's
            raise NotReady(f"no {alg} key signs yet; try again in a minute")
        key = self._open(conn, signing.kid, alg)
        header = {"alg": alg, "kid": signing.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[alg])
