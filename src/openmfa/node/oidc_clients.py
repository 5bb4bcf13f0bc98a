"""OpenID Connect relying parties: applications (authorization code + PKCE) and Microsoft Entra
ID asking for its external authentication method. Behind ``openmfa oidc client ...``.

Invariants owned here:
- a redirect URI matches only exactly, character for character, as registered (OpenID Connect
  Core §3.1.2.1; RFC 9700 §4.1.3): no prefix, no normalisation, no wildcard;
- a confidential client's secret is shown once, when it is made, and stored only as its
  SHA-256. That is enough here (no slow password hash): the secret is 256 random bits, not a
  person's password, so no guess or dictionary gets near it, and SHA-256 is preimage-resistant;
  it is compared in constant time (``hmac.compare_digest``). A public client has no secret and
  must use PKCE (``node.oidc_codes``);
- clients are data (``oidc.client`` records, data format 8): every node of a farm knows them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, bindparam, select

from ..errors import InvalidClient, InvalidInput, NotFound
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import OIDC_FORMAT, require

KINDS = ("app", "entra-eam")
ENTRA_REDIRECT = "https://login.microsoftonline.com/common/federation/externalauthprovider"
"""Where Entra ID wants its external authentication method's answer POSTed."""
SECRET_PREFIX = "omfs_"  # noqa: S105 - a prefix, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BY_ID = select(t.oidc_clients).where(t.oidc_clients.c.client_id == bindparam("client_id"))
"""Built once (every authorization and token request reads its client)."""


@dataclass(frozen=True, slots=True)
class OidcClient:
    client_id: str
    name: str
    kind: str
    public: bool
    redirect_uris: tuple[str, ...]
    settings: dict[str, Any]
    created_at: float
    secret_hash: bytes | None = None

    @property
    def entra_tenant(self) -> str:
        return str(self.settings.get("entra_tenant", ""))

    @property
    def entra_client_id(self) -> str:
        """OpenMFA's application id in the tenant: what the ``id_token_hint``'s ``aud`` is."""
        return str(self.settings.get("entra_client_id", ""))

    @property
    def hint_issuer(self) -> str:
        default = f"https://login.microsoftonline.com/{self.entra_tenant}/v2.0"
        return str(self.settings.get("issuer") or default)

    @property
    def jwks_uri(self) -> str:
        default = f"https://login.microsoftonline.com/{self.entra_tenant}/discovery/v2.0/keys"
        return str(self.settings.get("jwks_uri") or default)

    @property
    def match_upn(self) -> bool:
        return bool(self.settings.get("match_upn", False))

    def view(self) -> dict[str, Any]:
        """What ``openmfa oidc client list`` shows (never the secret's hash)."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "kind": self.kind,
            "public": self.public,
            "redirect_uris": list(self.redirect_uris),
            **self.settings,
            "created_at": self.created_at,
        }


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _check_uri(uri: str) -> str:
    parts = urlsplit(uri)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise InvalidInput(f"redirect URI {uri!r} must be an absolute https:// URL, no fragment")
    if parts.scheme == "http" and not local:
        raise InvalidInput(f"redirect URI {uri!r} must use https:// (http only for localhost)")
    return uri


class OidcClients:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)

    def add(
        self,
        name: str,
        redirect_uris: list[str],
        *,
        public: bool = False,
        kind: str = "app",
        entra_tenant: str = "",
        entra_client_id: str = "",
        issuer: str = "",
        jwks_uri: str = "",
        match_upn: bool = False,
        client: str = "cli",
    ) -> tuple[OidcClient, str]:
        """A new client and its secret ("" for a public one), shown this once."""
        if not _NAME.match(name):
            raise InvalidInput("a client name is 1 to 64 letters, digits, '.', '_' or '-'")
        if kind not in KINDS:
            raise InvalidInput(f"--kind must be app or entra-eam, not {kind!r}")
        settings: dict[str, Any] = {}
        if kind == "entra-eam":
            if not _GUID.match(entra_tenant) or not _GUID.match(entra_client_id):
                raise InvalidInput(
                    "an entra-eam client needs --entra-tenant (the tenant id) and "
                    "--entra-client-id (OpenMFA's application id in that tenant), both GUIDs"
                )
            if public:
                raise InvalidInput("an entra-eam client is not --public (Entra sends no secret)")
            redirect_uris = redirect_uris or [ENTRA_REDIRECT]
            settings = {
                "entra_tenant": entra_tenant.lower(),
                "entra_client_id": entra_client_id.lower(),
                "issuer": issuer,
                "jwks_uri": jwks_uri,
                "match_upn": match_upn,
            }
        elif entra_tenant or entra_client_id or issuer or jwks_uri or match_upn:
            raise InvalidInput(
                "--entra-*, --issuer, --jwks-uri and --match-upn are for --kind entra-eam"
            )
        if not redirect_uris:
            raise InvalidInput("give at least one --redirect-uri")
        uris = tuple(dict.fromkeys(_check_uri(u) for u in redirect_uris))
        with self.store.read() as conn:
            require(conn, OIDC_FORMAT, "OpenID Connect clients")
            if conn.scalar(select(t.oidc_clients.c.name).where(t.oidc_clients.c.name == name)):
                raise InvalidInput(f"there is a client named {name!r} already")
        # Entra sends no client secret with its external authentication method (the
        # request is the browser's form post): such a client is confidential by its
        # hint, and the secret made here is never asked for.
        secret = "" if public or kind == "entra-eam" else SECRET_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        made = OidcClient(
            secrets.token_hex(16),
            name,
            kind,
            public,
            uris,
            settings,
            now,
            secret_hash(secret) if secret else None,
        )
        payload = {
            "client_id": made.client_id,
            "name": name,
            "kind": kind,
            "public": public,
            "secret_hash": made.secret_hash.hex() if made.secret_hash else "",
            "redirect_uris": list(uris),
            "settings": settings,
            "at": now,
        }
        event = AuditEvent("oidc.client.add", "ok", client=client, detail=f"{kind} {name}")
        self.writer.commit([Change("oidc.client", payload)], [event])
        return made, secret

    def remove(self, name: str, client: str = "cli") -> None:
        found = self.by_name(name)
        event = AuditEvent("oidc.client.remove", "ok", client=client, detail=name)
        self.writer.commit([Change("oidc.client.remove", {"client_id": found.client_id})], [event])

    def list(self) -> list[OidcClient]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.oidc_clients).order_by(t.oidc_clients.c.name)).all()
        return [_client(r._mapping) for r in rows]

    def by_name(self, name: str) -> OidcClient:
        found = next((c for c in self.list() if c.name == name or c.client_id == name), None)
        if found is None:
            raise NotFound(
                f"there is no OpenID Connect client {name!r} (`openmfa oidc client list`)"
            )
        return found

    def get(self, client_id: str, conn: Connection | None = None) -> OidcClient:
        """The client ``client_id`` names (in ``conn``'s transaction when given), or
        ``invalid_client``."""
        if conn is None:
            with self.store.read() as c:
                return self.get(client_id, c)
        row = conn.execute(_BY_ID, {"client_id": client_id[:64]}).first()
        if row is None:
            raise InvalidClient("unknown client_id")
        return _client(row._mapping)

    def authenticate(
        self, client_id: str, secret: str, conn: Connection | None = None
    ) -> OidcClient:
        """The client, if ``secret`` is its secret (a public client: no secret at all);
        otherwise ``invalid_client``, never saying which part was wrong."""
        found = self.get(client_id, conn)
        if found.public or found.secret_hash is None:
            if secret:
                raise InvalidClient("this client is public: send no client secret")
            return found
        if not hmac.compare_digest(secret_hash(secret), found.secret_hash):
            raise InvalidClient("the client is not authenticated (unknown id, or a wrong secret)")
        return found


def redirect_allowed(client: OidcClient, uri: str) -> bool:
    """Whether ``uri`` is one of the client's redirect URIs, exactly as registered."""
    return uri in client.redirect_uris


def _client(m: Any) -> OidcClient:
    return OidcClient(
        m["client_id"],
        m["name"],
        m["kind"],
        bool(m["public"]),
        tuple(m["redirect_uris"]),
        dict(m["settings"] or {}),
        float(m["created_at"]),
        bytes(m["secret_hash"]) if m["secret_hash"] is not None else None,
    )
