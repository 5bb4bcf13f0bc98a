"""The change records of OpenID Connect (data format 8), applied like every other record
(``changes.ChangeWriter``), so keys, clients and Entra subjects replicate to every node of a
farm, and are in every backup.

- ``oidc.key``: a signing key — ``kid``, ``alg``, the public JWK, the private half sealed under
  ``oidc-key:KID`` (hex), the RSA key's certificate, ``at`` and ``signs_from``;
- ``oidc.key.remove``: a key no token it signed can still need (``kid``);
- ``oidc.client``: a relying party, whole (a second record of the same ``client_id`` replaces
  it); its secret only as a hash;
- ``oidc.client.remove``: ``client_id``;
- ``oidc.subject``: the person (``user_id``) an Entra account (``tid``, ``oid``) is;
- ``oidc.subject.remove``: ``tid``, ``oid``.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert

from . import tables as t
from .changes import Payload, applier


@applier("oidc.key")
def _key(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.oidc_keys).where(t.oidc_keys.c.kid == p["kid"]))
    conn.execute(
        insert(t.oidc_keys).values(
            kid=p["kid"],
            alg=p["alg"],
            public_jwk=p["public_jwk"],
            private_enc=bytes.fromhex(p["private_enc"]),
            cert=p.get("cert", ""),
            created_at=p["at"],
            signs_from=p["signs_from"],
        )
    )


@applier("oidc.key.remove")
def _key_remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.oidc_keys).where(t.oidc_keys.c.kid == p["kid"]))


@applier("oidc.client")
def _client(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.oidc_clients).where(t.oidc_clients.c.client_id == p["client_id"]))
    conn.execute(
        insert(t.oidc_clients).values(
            client_id=p["client_id"],
            name=p["name"],
            kind=p["kind"],
            public=bool(p["public"]),
            secret_hash=bytes.fromhex(p["secret_hash"]) if p.get("secret_hash") else None,
            redirect_uris=list(p["redirect_uris"]),
            settings=dict(p.get("settings") or {}),
            created_at=p["at"],
        )
    )


@applier("oidc.client.remove")
def _client_remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.oidc_clients).where(t.oidc_clients.c.client_id == p["client_id"]))


@applier("oidc.subject")
def _subject(conn: Connection, p: Payload) -> None:
    s = t.oidc_subjects
    conn.execute(delete(s).where(s.c.tid == p["tid"], s.c.oid == p["oid"]))
    conn.execute(
        insert(s).values(
            tid=p["tid"], oid=p["oid"], user_id=p["user_id"], how=p["how"], created_at=p["at"]
        )
    )


@applier("oidc.subject.remove")
def _subject_remove(conn: Connection, p: Payload) -> None:
    s = t.oidc_subjects
    conn.execute(delete(s).where(s.c.tid == p["tid"], s.c.oid == p["oid"]))
