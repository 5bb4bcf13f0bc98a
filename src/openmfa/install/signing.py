"""Signed bundles: the administrator's release key (Ed25519) signs a bundle's manifest, and a
host that pinned the key takes only bundles it signed.

The key is made once (``openmfa release-key create``) and kept off the hosts; its public half
is pinned on each host before any bundle arrives (``openmfa release-key trust``, a line in
``ROOT/trusted-release-keys``). ``openmfa bundle create --sign-key`` writes ``bundle.sig``
beside ``bundle.json``: the signature over the manifest's exact bytes. The manifest names every
file of the bundle with its SHA-256 (the wheels, and the CycloneDX SBOM of them), so one
signature covers every byte.

Invariant owned here: on a host with a pinned key, a bundle is opened only if its signature is
valid, by a pinned key, over the manifest as it is, and every file it holds is in the manifest
with the right checksum and no other file is there — checked before anything on the host
changes. A host with no pinned key takes unsigned bundles as before, and says that it did.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError, InvalidInput

PUBLIC_PREFIX = "openmfa-release-key-v1:"
SIGNATURE_FILE = "bundle.sig"
TRUST_FILE = "trusted-release-keys"


def key_id(public: str) -> str:
    """A short name of a public key (its SHA-256, 16 hex digits)."""
    return hashlib.sha256(public.encode()).hexdigest()[:16]


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key as ``release-key create`` prints it; InvalidInput if it is not one."""
    text = text.strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise InvalidInput(
            f"{text[:40]!r} is not an OpenMFA release key; give the line `openmfa release-key "
            f"create` printed ({PUBLIC_PREFIX}…)"
        )
    body = text[len(PUBLIC_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput("that release key is damaged (not 32 bytes of Ed25519)") from None


def create_key(out: Path) -> str:
    """Write a new private release key to ``out`` (mode 0600, refusing to overwrite); return its
    public half as text."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{out} exists; a release key is made once — keep using it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_text(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read the release key {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path} is not a release key (`openmfa release-key create`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 release key")
    return key


def sign(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    """The contents of ``bundle.sig`` for the manifest's exact bytes."""
    body = {
        "key": public_text(key.public_key()),
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }
    return json.dumps(body, indent=2).encode() + b"\n"


def trusted(root: Path) -> list[str]:
    """The release keys pinned on the installation at ``root``."""
    path = root / TRUST_FILE
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [x.strip() for x in lines if x.strip() and not x.startswith("#")]


def trust(root: Path, public: str) -> bool:
    """Pin ``public`` on the installation at ``root`` (made if need be); False if it was."""
    parse_public(public)
    public = public.strip()
    pinned = trusted(root)
    if public in pinned:
        return False
    root.mkdir(parents=True, exist_ok=True)
    path = root / TRUST_FILE
    head = "" if path.exists() else "# OpenMFA release keys this host takes bundles from\n"
    with path.open("a") as f:
        f.write(head + public + "\n")
    return True


def check_signature(bundle: Path, manifest: bytes, pinned: list[str]) -> str:
    """The key id of a valid signature by a pinned key over ``manifest``; "" when the host pins
    no key and the bundle is unsigned. InvalidInput, naming the file, otherwise."""
    sig_path = bundle / SIGNATURE_FILE
    if not sig_path.exists():
        if pinned:
            raise InvalidInput(
                f"{SIGNATURE_FILE} is missing: this host takes only bundles signed by its release "
                f"key ({', '.join(key_id(p) for p in pinned)}); make the bundle with `openmfa "
                "bundle create --sign-key FILE`"
            )
        return ""
    try:
        said = json.loads(sig_path.read_bytes())
        public, signature = str(said["key"]), base64.b64decode(said["signature"])
        parse_public(public).verify(signature, manifest)
    except (ValueError, KeyError, TypeError, InvalidInput, InvalidSignature):
        raise InvalidInput(
            f"{SIGNATURE_FILE} does not match bundle.json: the bundle was changed after it was "
            "signed, or damaged; copy it again from where it was made"
        ) from None
    if pinned and public not in pinned:
        raise InvalidInput(
            f"{SIGNATURE_FILE} is by release key {key_id(public)}, which this host does not "
            f"trust (it trusts {', '.join(key_id(p) for p in pinned)}); pin it with `openmfa "
            "release-key trust` only if it is yours"
        )
    return key_id(public)
