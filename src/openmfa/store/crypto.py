"""Encryption at rest under the node's key file.

The key file holds one random 256-bit key (``openmfa-key-v1:<base64>``, mode 0600). OATH seeds are
sealed with AES-256-GCM; the method id is the associated data, so a ciphertext copied onto another
method does not open. Sub-keys for other purposes (the backup-code pepper, the check value that
proves a key file belongs to a data file) are derived with HKDF so the master key is used once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import KeyFileError

KEY_PREFIX = "openmfa-key-v1:"
SEAL_VERSION = b"\x01"
CHECK_PLAINTEXT = b"openmfa key check"


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


class SecretBox:
    """Seals and opens small secrets; built from the key file."""

    def __init__(self, master: bytes) -> None:
        self._aead = AESGCM(_derive(master, b"openmfa seeds"))
        self.pepper = _derive(master, b"openmfa backup codes")
        self._index = hmac.new(_derive(master, b"openmfa blind index"), digestmod="sha256")

    def blind_index(self, purpose: str, value: str) -> bytes:
        """A keyed digest of ``value`` (HMAC-SHA-256 under a key derived from the data key) to
        find a row by a sealed value without opening every row: equal values give equal digests,
        and without the key file a digest tells nothing about the value."""
        mac = self._index.copy()
        mac.update(purpose.encode() + b"\0" + value.encode())
        return mac.digest()

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if not sealed or sealed[:1] != SEAL_VERSION:
            raise KeyFileError(f"secret of {context} has an unknown format; restore a backup")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context.encode())
        except InvalidTag:
            raise KeyFileError(
                f"secret of {context} does not open with this key file: the key file does not "
                "belong to this data file; put back the key file that was made with it"
            ) from None

    def check_value(self) -> bytes:
        return self.seal(CHECK_PLAINTEXT, "key-check")

    def matches(self, check_value: bytes) -> bool:
        try:
            return self.open(check_value, "key-check") == CHECK_PLAINTEXT
        except KeyFileError:
            return False


def create_key_file(path: Path) -> None:
    """Write a fresh key file readable by its owner only. Never overwrites."""
    data = (KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} is missing; restore it from your backup (without it the enrolled "
            "secrets cannot be read), or run `openmfa init` for a new, empty node"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"key file {path} cannot be read ({exc}); check it and its permissions"
        ) from None
    if not text.startswith(KEY_PREFIX):
        raise KeyFileError(_corrupt(path))
    try:
        key = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(_corrupt(path)) from None
    if len(key) != 32:
        raise KeyFileError(_corrupt(path))
    return key


def _corrupt(path: Path) -> str:
    return (
        f"key file {path} is corrupt (expected '{KEY_PREFIX}' and 44 base64 characters); "
        "restore it from your backup — without it the enrolled secrets cannot be read"
    )
