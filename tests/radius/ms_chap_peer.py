"""The MS-CHAPv2 *peer* (RFC 2759 §8) and its MPPE keys (RFC 3079 §3), written for the tests on
their own — this module never imports ``openmfa.radius.mschap``, so the server's code is judged
by an independent implementation (and both by the RFC 2759 §9.2 / RFC 3079 §3.5.3 vectors).

MD4 is written out (RFC 1320): OpenSSL 3 no longer offers it to ``hashlib``. DES is
``cryptography``'s TripleDES with K1 = K2 = K3, which is single DES.
"""

from __future__ import annotations

import hashlib
import struct
import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[attr-defined,no-redef,unused-ignore]

# --- RFC 1320 MD4 ----------------------------------------------------------------------------

_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def md4(data: bytes) -> bytes:
    message = data + b"\x80" + bytes(-(len(data) + 9) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", message[offset : offset + 64])
        a, b, c, d = h

        def f(x_: int, y: int, z: int) -> int:
            return (x_ & y) | (~x_ & z)

        def g(x_: int, y: int, z: int) -> int:
            return (x_ & y) | (x_ & z) | (y & z)

        for i in range(16):  # round 1
            k, s = i, (3, 7, 11, 19)[i % 4]
            a, b, c, d = d, _rotl(a + f(b, c, d) + x[k], s), b, c
        for i in range(16):  # round 2
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            a, b, c, d = d, _rotl(a + g(b, c, d) + x[k] + 0x5A827999, s), b, c
        for i in range(16):  # round 3
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            s = (3, 9, 11, 15)[i % 4]
            a, b, c, d = d, _rotl(a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1, s), b, c
        h = [(v + w) & _MASK for v, w in zip(h, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *h)


# --- DES (RFC 2759 §8.6 DesEncrypt) --------------------------------------------------------


def _des_key(seven: bytes) -> bytes:
    """56 key bits spread over 8 octets, the low (parity) bit of each left 0."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def des_encrypt(clear: bytes, seven: bytes) -> bytes:
    key = _des_key(seven)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TripleDES.*")
        # One 8-octet block: ECB is what RFC 2759 §8.6 DesEncrypt is.
        encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(clear) + encryptor.finalize()


# --- RFC 2759 §8 ---------------------------------------------------------------------------


def nt_password_hash(password: str) -> bytes:
    """§8.3 NtPasswordHash: MD4 of the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """§8.4 HashNtPasswordHash."""
    return md4(password_hash)


def peer_challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, user: str) -> bytes:
    """§8.2 ChallengeHash, with any ``DOMAIN\\`` prefix left out of the user name."""
    name = user.split("\\")[-1].encode("utf-8")
    return hashlib.sha1(peer_challenge + authenticator_challenge + name).digest()[:8]


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """§8.5 ChallengeResponse: three DES blocks under the zero-padded 21-octet hash."""
    z = password_hash + bytes(5)
    return b"".join(des_encrypt(challenge, z[i : i + 7]) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, user: str, password: str
) -> bytes:
    """§8.1 GenerateNTResponse."""
    challenge = peer_challenge_hash(peer_challenge, authenticator_challenge, user)
    return challenge_response(challenge, nt_password_hash(password))


def generate_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user: str,
) -> bytes:
    """§8.7 GenerateAuthenticatorResponse, from the password: what the peer expects back."""
    hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(
        hash_hash + nt_response + b"Magic server to client signing constant"
    ).digest()
    challenge = peer_challenge_hash(peer_challenge, authenticator_challenge, user)
    digest = hashlib.sha1(
        digest + challenge + b"Pad to make it do more than one iteration"
    ).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def check_authenticator_response(
    received: bytes,
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user: str,
) -> bool:
    """§8.8 CheckAuthenticatorResponse."""
    expected = generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, user
    )
    return received[:42].upper() == expected


# --- RFC 3079 §3.4 (the peer's view) --------------------------------------------------------

_MAGIC_MASTER = b"This is the MPPE Master Key"
_MAGIC_CLIENT_SEND = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_MAGIC_CLIENT_RECV = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)


def peer_master_key(password: str, nt_response: bytes) -> bytes:
    hash_hash = hash_nt_password_hash(nt_password_hash(password))
    return hashlib.sha1(hash_hash + nt_response + _MAGIC_MASTER).digest()[:16]


def peer_start_keys(password: str, nt_response: bytes) -> tuple[bytes, bytes]:
    """(the peer's send key, the peer's receive key), 128 bits each. The server's (and so a
    RADIUS reply's) MS-MPPE-Send-Key is the peer's receive key, its Recv-Key the peer's send."""
    master = peer_master_key(password, nt_response)

    def start(magic: bytes) -> bytes:
        return hashlib.sha1(master + bytes(40) + magic + b"\xf2" * 40).digest()[:16]

    return start(_MAGIC_CLIENT_SEND), start(_MAGIC_CLIENT_RECV)


# --- RADIUS attribute values (RFC 2548 §2.3.2, §2.1.2) -------------------------------------


def build_request(
    user: str, password: str, authenticator_challenge: bytes, peer_challenge: bytes, ident: int
) -> tuple[bytes, bytes]:
    """(MS-CHAP-Challenge value, MS-CHAP2-Response value) for an Access-Request."""
    assert len(authenticator_challenge) == 16 and len(peer_challenge) == 16
    nt_response = generate_nt_response(authenticator_challenge, peer_challenge, user, password)
    response = bytes([ident, 0]) + peer_challenge + bytes(8) + nt_response
    return authenticator_challenge, response
