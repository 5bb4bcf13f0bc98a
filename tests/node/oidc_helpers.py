"""What the OpenID Connect tests share: a node's store with a clock the test moves, and a JWT
checked without joserfc — by ``cryptography`` alone, against the published JWKS — so that the
node's tokens are judged by code that did not make them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from openmfa.config import Config
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def oidc_config(**oidc: object) -> Config:
    return make_config(oidc={"issuer": "https://portal.example.org/portal", **oidc})


@pytest.fixture
def oidc_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.create(DataDir(tmp_path / "node"), oidc_config())
    try:
        yield s
    finally:
        s.close()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _int(part: str) -> int:
    return int.from_bytes(_unb64(part), "big")


def verify_independently(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The claims of ``token`` if its signature verifies with the key of its ``kid`` in
    ``jwks`` (RS256: the RSA key, and the same key in the ``x5c`` certificate; ES256: P-256);
    raises otherwise."""
    head_b64, body_b64, sig_b64 = token.split(".")
    header = json.loads(_unb64(head_b64))
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    signed, sig = f"{head_b64}.{body_b64}".encode(), _unb64(sig_b64)
    if header["alg"] == "RS256":
        public = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        public.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        cert = x509.load_der_x509_certificate(base64.b64decode(jwk["x5c"][0]))
        assert cert.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    elif header["alg"] == "ES256":
        point = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1())
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        point.public_key().verify(der, signed, ec.ECDSA(hashes.SHA256()))
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    claims: dict[str, Any] = json.loads(_unb64(body_b64))
    return claims


def header_of(token: str) -> dict[str, Any]:
    head: dict[str, Any] = json.loads(_unb64(token.split(".")[0]))
    return head
