"""MS-CHAPv2 over RADIUS: Microsoft's vendor attributes (RFC 2548), the server's SHA-1 half of
MS-CHAPv2 (RFC 2759 §8) and the MPPE keys it yields (RFC 3079 §3) — sans-IO.

Invariants owned here:
- ``vendor_attributes`` (RFC 2865 §5.26) either returns the parsed sub-attributes or raises
  ``MalformedPacket``: a Vendor-Specific value shorter than the vendor id and one sub-attribute,
  or a Microsoft one (vendor 311) whose sub-attributes do not tile the value exactly, never
  yields a value or another exception. Another vendor's VSA in a layout of its own (§5.26 only
  *suggests* type/length/value) is skipped, not refused: it is still relayed verbatim.
- An MS-MPPE-Send-Key/Recv-Key value (RFC 2548 §2.4.2, §2.4.3) decrypts only when it has a salt
  with its high bit set and a whole number of 16-octet blocks whose first octet (the key length)
  fits: anything else is ``MalformedPacket``. ``recode_mppe_key`` keeps the upstream's salt, so
  the salts of the two keys in one reply stay distinct (§2.4.2: unique per attribute).
- No MD4 or DES here: the NT-Response itself is checked by whoever holds the password (an
  upstream RADIUS server, or Active Directory through ``ntlm_auth``); with the PasswordHashHash it
  returns, this module computes what the server side sends back — the authenticator response
  (RFC 2759 §8.7) and the MPPE keys (RFC 3079 §3.4, the directions of FreeRADIUS's
  ``mppe_chap2_get_keys128``: MS-MPPE-Send-Key is the server's send key, Magic3).

RFC 2759 §9.2 / RFC 3079 §3.5.3 worked example (user "User", password "clientPass"):

>>> hh = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
>>> nt = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
>>> peer = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
>>> auth = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
>>> challenge_hash(peer, auth, b"User").hex().upper()
'D02E4386BCE91226'
>>> authenticator_response(hh, nt, peer, auth, b"User")
b'S=407A5589115FD0D6209F510FE9C04566932CDA56'
>>> master_key(hh, nt).hex().upper()
'FDECE3717A8C838CB388E527AE3CDD31'
>>> mppe_keys_for_server(hh, nt)[0].hex().upper()
'8B7CDC149B993A1BA118CB153F56DCCB'
"""

# ruff: noqa: S324 -- MD5 (RFC 2548 key hiding) and SHA-1 (RFC 2759, 3079) are the protocol's own.
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from ..errors import MalformedPacket

VENDOR_SPECIFIC = 26
MICROSOFT = 311

# RFC 2548 §2: Microsoft vendor-types.
MS_CHAP_RESPONSE = 1
MS_CHAP_ERROR = 2
MS_MPPE_ENCRYPTION_POLICY = 7
MS_MPPE_ENCRYPTION_TYPES = 8
MS_CHAP_CHALLENGE = 11
MS_MPPE_SEND_KEY = 16
MS_MPPE_RECV_KEY = 17
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26

CHAP2_RESPONSE_LENGTH = 50
"""RFC 2548 §2.3.2: Ident, Flags, Peer-Challenge (16), Reserved (8), Response (24)."""
AUTHENTICATOR_RESPONSE_LENGTH = 42
"""RFC 2759 §8.7: "S=" and 40 upper-case hexadecimal digits."""

_MAX_VSA_VALUE = 255 - 2 - 6
"""A RADIUS attribute holds 253 octets; the vendor id and sub-attribute header take 6."""
_VSA_HEADER = struct.Struct("!IBB")

# RFC 2759 §8.7 GenerateAuthenticatorResponse.
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 §3.4 GetMasterKey / GetAsymmetricStartKey.
_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_KEY_MAGIC3 = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


# --- RFC 2865 §5.26 Vendor-Specific -------------------------------------------------------


def vendor_attributes(attributes: list[tuple[int, bytes]]) -> list[tuple[int, int, bytes]]:
    """(vendor, vendor-type, value) of every Vendor-Specific sub-attribute, in packet order."""
    out: list[tuple[int, int, bytes]] = []
    for kind, value in attributes:
        if kind != VENDOR_SPECIFIC:
            continue
        if len(value) < 5:  # §5.26: Length >= 7, i.e. the vendor id and at least one octet
            raise MalformedPacket(
                f"a Vendor-Specific attribute of {len(value)} octets is too short"
            )
        vendor = int.from_bytes(value[:4], "big")
        subs = _sub_attributes(vendor, value)
        if subs is None:
            if vendor == MICROSOFT:
                raise MalformedPacket("a Microsoft Vendor-Specific attribute has a bad length")
            continue
        out.extend(subs)
    return out


def _sub_attributes(vendor: int, value: bytes) -> list[tuple[int, int, bytes]] | None:
    subs: list[tuple[int, int, bytes]] = []
    pos, end = 4, len(value)
    while pos < end:
        if pos + 2 > end:
            return None
        vtype, vlen = value[pos], value[pos + 1]
        if vlen < 2 or pos + vlen > end:
            return None
        subs.append((vendor, vtype, value[pos + 2 : pos + vlen]))
        pos += vlen
    return subs


def ms_get(attributes: list[tuple[int, bytes]], ms_type: int) -> bytes | None:
    """The first Microsoft sub-attribute of ``ms_type`` (RFC 2548 §2), or None."""
    for vendor, vtype, value in vendor_attributes(attributes):
        if vendor == MICROSOFT and vtype == ms_type:
            return value
    return None


def ms_vsa(ms_type: int, value: bytes) -> tuple[int, bytes]:
    """One Vendor-Specific attribute holding one Microsoft sub-attribute."""
    if len(value) > _MAX_VSA_VALUE:
        raise ValueError(f"a Microsoft attribute value of {len(value)} octets does not fit")
    return VENDOR_SPECIFIC, _VSA_HEADER.pack(MICROSOFT, ms_type, len(value) + 2) + value


# --- RFC 2548 §2.4.2, §2.4.3 MS-MPPE-Send-Key / MS-MPPE-Recv-Key --------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _keystream_apply(
    data: bytes, secret: bytes, authenticator: bytes, salt: bytes, enc: bool
) -> bytes:
    # b(1) = MD5(S + R + A), b(i) = MD5(S + c(i-1)); c(i) = p(i) xor b(i).
    out = bytearray()
    previous = authenticator + salt
    for i in range(0, len(data), 16):
        block = data[i : i + 16]
        mixed = _xor(block, hashlib.md5(secret + previous).digest())
        out += mixed
        previous = mixed if enc else block
    return bytes(out)


def encrypt_mppe_key(
    key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes | None = None
) -> bytes:
    """Salt + the encrypted key-length-prefixed, zero-padded key (RFC 2548 §2.4.2).

    ``request_authenticator`` is that of the Access-Request this reply answers."""
    if salt is None:
        salt = bytes([os.urandom(1)[0] | 0x80]) + os.urandom(1)
    if len(salt) != 2 or not salt[0] & 0x80:
        raise ValueError("an MPPE key salt is 2 octets with the high bit set")
    if len(request_authenticator) != 16:
        raise ValueError("a Request Authenticator is 16 octets")
    plain = bytes([len(key)]) + key
    plain += bytes(-len(plain) % 16)
    if len(salt) + len(plain) > _MAX_VSA_VALUE:
        raise ValueError(f"an MPPE key of {len(key)} octets does not fit an attribute")
    return salt + _keystream_apply(plain, secret, request_authenticator, salt, True)


def decrypt_mppe_key(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """The key in an MS-MPPE-Send-Key/Recv-Key value (RFC 2548 §2.4.2, §2.4.3)."""
    body = value[2:]
    if len(value) < 18 or len(body) % 16:
        raise MalformedPacket(f"an MPPE key attribute of {len(value)} octets has a bad length")
    if not value[0] & 0x80:
        raise MalformedPacket("an MPPE key salt lacks its high bit")
    if len(request_authenticator) != 16:
        raise ValueError("a Request Authenticator is 16 octets")
    plain = _keystream_apply(body, secret, request_authenticator, value[:2], False)
    length = plain[0]
    if length > len(plain) - 1:
        raise MalformedPacket("an MPPE key's length runs past its attribute (wrong secret?)")
    return plain[1 : 1 + length]


def recode_mppe_key(
    value: bytes,
    from_secret: bytes,
    from_authenticator: bytes,
    to_secret: bytes,
    to_authenticator: bytes,
) -> bytes:
    """An upstream's MPPE key value re-encrypted for the NAS (what a proxy does), same salt."""
    key = decrypt_mppe_key(value, from_secret, from_authenticator)
    return encrypt_mppe_key(key, to_secret, to_authenticator, value[:2])


# --- RFC 2759 §8 (the SHA-1 parts) and RFC 3079 §3.4 ----------------------------------------


def bare_user_name(user_name: bytes) -> bytes:
    """The user name without a ``DOMAIN\\`` prefix (RFC 2759 §8.2)."""
    return user_name.rpartition(b"\\")[2]


def challenge_hash(
    peer_challenge: bytes, authenticator_challenge: bytes, user_name: bytes
) -> bytes:
    """RFC 2759 §8.2 ChallengeHash: 8 octets; a ``DOMAIN\\`` prefix is left out."""
    digest = hashlib.sha1(peer_challenge + authenticator_challenge + bare_user_name(user_name))
    return digest.digest()[:8]


def authenticator_response(
    password_hash_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user_name: bytes,
) -> bytes:
    """RFC 2759 §8.7 GenerateAuthenticatorResponse: ``b"S="`` and 40 upper-case hex digits."""
    digest = hashlib.sha1(password_hash_hash + nt_response + _AUTH_MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name)
    digest = hashlib.sha1(digest + challenge + _AUTH_MAGIC2).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """RFC 3079 §3.4 GetMasterKey: 16 octets."""
    return hashlib.sha1(password_hash_hash + nt_response + _KEY_MAGIC1).digest()[:16]


def asymmetric_start_key(
    master_key: bytes, key_length: int, is_send: bool, is_server: bool
) -> bytes:
    """RFC 3079 §3.4 GetAsymmetricStartKey; the server's send key is the client's receive key."""
    if not 0 < key_length <= 20:
        raise ValueError("a start key is 1..20 octets")
    magic = _KEY_MAGIC3 if is_send == is_server else _KEY_MAGIC2
    return hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:key_length]


def mppe_keys_for_server(password_hash_hash: bytes, nt_response: bytes) -> tuple[bytes, bytes]:
    """(MS-MPPE-Send-Key, MS-MPPE-Recv-Key) in the clear: the server's 128-bit send and receive
    start keys, as FreeRADIUS's rlm_mschap (``mppe_chap2_get_keys128``) puts them in a reply."""
    mk = master_key(password_hash_hash, nt_response)
    return asymmetric_start_key(mk, 16, True, True), asymmetric_start_key(mk, 16, False, True)


def mppe_key_attributes(
    send_key: bytes, recv_key: bytes, secret: bytes, request_authenticator: bytes
) -> list[tuple[int, bytes]]:
    """MS-MPPE-Send-Key and MS-MPPE-Recv-Key attributes for one reply, with distinct salts."""
    send_salt = bytes([os.urandom(1)[0] | 0x80]) + os.urandom(1)
    recv_salt = bytes([send_salt[0] ^ 0x01]) + send_salt[1:]  # unique per packet (§2.4.2)
    return [
        ms_vsa(
            MS_MPPE_SEND_KEY, encrypt_mppe_key(send_key, secret, request_authenticator, send_salt)
        ),
        ms_vsa(
            MS_MPPE_RECV_KEY, encrypt_mppe_key(recv_key, secret, request_authenticator, recv_salt)
        ),
    ]


# --- RFC 2548 §2.3 MS-CHAP2-Response, MS-CHAP2-Success, MS-CHAP-Error ----------------------


@dataclass(frozen=True, slots=True)
class Chap2Response:
    """An MS-CHAP2-Response value (RFC 2548 §2.3.2)."""

    ident: int
    flags: int
    peer_challenge: bytes
    nt_response: bytes


def parse_chap2_response(value: bytes) -> Chap2Response:
    if len(value) != CHAP2_RESPONSE_LENGTH:
        raise MalformedPacket(f"an MS-CHAP2-Response of {len(value)} octets (it is 50)")
    return Chap2Response(value[0], value[1], value[2:18], value[26:50])


def chap2_success(ident: int, authenticator_response: bytes) -> bytes:
    """An MS-CHAP2-Success value (RFC 2548 §2.3.3): the Ident, then the 42-octet "S=…"."""
    if len(authenticator_response) != AUTHENTICATOR_RESPONSE_LENGTH:
        raise ValueError("an authenticator response is 42 octets")
    if not authenticator_response.startswith(b"S="):
        raise ValueError('an authenticator response starts with "S="')
    return bytes([ident & 0xFF]) + authenticator_response


def chap_error(
    ident: int,
    code: int = 691,
    *,
    retry: bool = False,
    challenge: bytes | None = None,
    message: str = "Authentication failed",
) -> bytes:
    """An MS-CHAP-Error value (RFC 2548 §2.1.5): the Ident, then the RFC 2759 §6 failure
    string ``E=691 R=0 C=<32 hex> V=3 M=<message>`` (691: authentication failure; 646:
    restricted hours; 647: account disabled; 648: password expired)."""
    if challenge is None:
        challenge = os.urandom(16)
    if len(challenge) != 16:
        raise ValueError("an MS-CHAPv2 challenge is 16 octets")
    text = "".join(c if " " <= c <= "~" else "?" for c in message)
    failure = f"E={code} R={int(retry)} C={challenge.hex().upper()} V=3 M={text}"
    body = bytes([ident & 0xFF]) + failure.encode("ascii")
    if len(body) > _MAX_VSA_VALUE:
        raise ValueError("an MS-CHAP-Error message does not fit an attribute")
    return body
