"""RADIUS packets (RFC 2865 §3, §5), Message-Authenticator (RFC 3579 §3.2) — sans-IO.

Invariants owned here:
- ``decode`` either returns a structurally valid packet or raises ``MalformedPacket``; it never
  trusts a length field it has not checked against the datagram (RFC 2865 §3: octets beyond
  Length are padding and ignored; a packet shorter than its Length is dropped).
- Every response carries a Message-Authenticator as its *first* attribute (the BlastRADIUS
  mitigation, CVE-2024-3596), and Proxy-State attributes are echoed in order (RFC 2865 §5.33).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import struct

import msgspec

from ..core import mac
from ..errors import MalformedPacket as MalformedPacket  # re-exported: p.MalformedPacket

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST = 4
ACCESS_CHALLENGE, STATUS_SERVER = 11, 12

USER_NAME, USER_PASSWORD, CHAP_PASSWORD = 1, 2, 3
NAS_IP_ADDRESS, REPLY_MESSAGE, STATE = 4, 18, 24
CALLING_STATION_ID = 31
"""Section 5.31: where the user is (an address, a MAC, a phone number)."""
PROXY_STATE, NAS_IDENTIFIER = 33, 32
CALLING_STATION_ID = 31
MESSAGE_AUTHENTICATOR = 80

MIN_LENGTH, MAX_LENGTH = 20, 4096
_HEADER = struct.Struct("!BBH16s")
_ZERO16 = bytes(16)


class Packet(msgspec.Struct):
    """A decoded packet (a ``msgspec.Struct``: built in C, one per datagram)."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: list[tuple[int, bytes]] = msgspec.field(default_factory=list)
    raw: bytes = b""
    """The packet exactly as received (without padding), for Message-Authenticator checks."""
    ma_at: int = -1
    """Offset in ``raw`` of the Message-Authenticator value, or -1 when there is none."""

    def get(self, kind: int) -> bytes | None:
        for t, v in self.attributes:
            if t == kind:
                return v
        return None

    def all(self, kind: int) -> list[bytes]:
        return [v for t, v in self.attributes if t == kind]


def origin_of(pkt: Packet) -> str:
    """Where the person signing in is, as the request says: its Calling-Station-Id (RFC 2865
    §5.31: the VPN client's address, or the number or MAC address that calls), else the NAS's
    own address (NAS-IP-Address, §5.4); "" when it says neither. One pass over the request's
    few attributes: no query, nothing sealed here (the node seals it with the audit row)."""
    station = pkt.get(CALLING_STATION_ID)
    if station:
        text = station[:64].decode("utf-8", "replace")
        return text if text.isprintable() else "".join(c for c in text if c.isprintable())
    nas = pkt.get(NAS_IP_ADDRESS)
    if nas is not None and len(nas) == 4:
        return str(ipaddress.IPv4Address(nas))
    return ""


def decode(data: bytes) -> Packet:
    size = len(data)
    if size < MIN_LENGTH:
        raise MalformedPacket(f"datagram of {size} bytes is shorter than a RADIUS header")
    code, identifier, length, authenticator = _HEADER.unpack_from(data)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise MalformedPacket(f"Length field {length} is outside 20..4096")
    if length > size:
        raise MalformedPacket(f"Length field {length} exceeds the {size}-byte datagram")
    attributes: list[tuple[int, bytes]] = []
    add = attributes.append
    pos, ma_at = MIN_LENGTH, -1
    while pos < length:
        if pos + 2 > length:
            raise MalformedPacket("attribute header runs past the packet")
        kind, alen = data[pos], data[pos + 1]
        end = pos + alen
        if alen < 2 or end > length:
            raise MalformedPacket(f"attribute {kind} has a bad length {alen}")
        if kind == MESSAGE_AUTHENTICATOR:
            if alen != 18 or ma_at >= 0:
                raise MalformedPacket("a Message-Authenticator must be one attribute of 18 bytes")
            ma_at = pos + 2
        add((kind, data[pos + 2 : end]))
        pos = end
    raw = data if length == size else data[:length]
    return Packet(code, identifier, authenticator, attributes, bytes(raw), ma_at)


def _encode_attributes(attributes: list[tuple[int, bytes]]) -> bytes:
    out = []
    for kind, value in attributes:
        if len(value) > 253:
            raise ValueError(f"attribute {kind} value of {len(value)} bytes is too long")
        out.append(bytes((kind, len(value) + 2)) + value)
    return b"".join(out)


_MD5 = mac.MD5


def _ma_over(raw_with_zeroed_ma: bytes, secret: bytes) -> bytes:
    """HMAC-MD5 under the shared secret: what a Message-Authenticator is (RFC 3579 §3.2)."""
    return mac.keyed(secret, "md5")(raw_with_zeroed_ma)


def _zero_ma(raw: bytes, authenticator: bytes | None = None) -> tuple[bytes, bytes | None]:
    """``raw`` with the Message-Authenticator value zeroed (and, optionally, the header
    authenticator replaced); returns (that, the original MA value or None)."""
    buf = bytearray(raw)
    if authenticator is not None:
        buf[4:20] = authenticator
    pos, found = MIN_LENGTH, None
    while pos < len(buf):
        kind, alen = buf[pos], buf[pos + 1]
        if kind == MESSAGE_AUTHENTICATOR and alen == 18:
            found = bytes(buf[pos + 2 : pos + 18])
            buf[pos + 2 : pos + 18] = _ZERO16
        pos += alen
    return bytes(buf), found


def request_ma_status(packet: Packet, secret: bytes) -> bool | None:
    """None: the request has no Message-Authenticator; True/False: it is right/wrong."""
    at = packet.ma_at
    if at < 0:
        return None
    raw = packet.raw
    ma = mac.keyed(secret, "md5")
    return hmac.compare_digest(ma(raw[:at] + _ZERO16 + raw[at + 16 :]), raw[at : at + 16])


_MA_HEAD = bytes((MESSAGE_AUTHENTICATOR, 18))
_MA_ZEROED = _MA_HEAD + _ZERO16


def encode_response(
    request: Packet, code: int, attributes: list[tuple[int, bytes]], secret: bytes
) -> bytes:
    """A response to ``request``: Message-Authenticator first, Proxy-State echoed last."""
    for t, v in request.attributes:
        if t == PROXY_STATE:
            attributes = [*attributes, (PROXY_STATE, v)]  # a copy: the caller keeps its list
    body = _encode_attributes(attributes) if attributes else b""
    length = MIN_LENGTH + 18 + len(body)
    if length > MAX_LENGTH:
        raise ValueError("response too long")
    # RFC 3579 §3.2: the MA of a response is computed with the Request Authenticator in place.
    head = _HEADER.pack(code, request.identifier, length, request.authenticator)
    ma = mac.keyed(secret, "md5")
    rest = _MA_HEAD + ma(head + _MA_ZEROED + body) + body
    response_authenticator: bytes = _MD5(head + rest + secret).digest()  # RFC 2865 §3
    return head[:4] + response_authenticator + rest


def encode_request(
    code: int,
    identifier: int,
    attributes: list[tuple[int, bytes]],
    secret: bytes,
    authenticator: bytes | None = None,
) -> bytes:
    """An Access-Request (or Status-Server) with a Message-Authenticator first.

    User-Password values must already be hidden with ``hide_password``."""
    authenticator = authenticator or os.urandom(16)
    attrs = [(MESSAGE_AUTHENTICATOR, _ZERO16), *attributes]
    body = _encode_attributes(attrs)
    head = _HEADER.pack(code, identifier, MIN_LENGTH + len(body), authenticator)
    ma = _ma_over(head + body, secret)
    return head + bytes((MESSAGE_AUTHENTICATOR, 18)) + ma + body[18:]


def verify_response(raw: bytes, request_authenticator: bytes, secret: bytes) -> Packet:
    """Check a response's Response Authenticator (and MA if present); return it decoded."""
    packet = decode(raw)
    expect = mac.md5(packet.raw[:4] + request_authenticator + packet.raw[20:] + secret)
    if not hmac.compare_digest(expect, packet.authenticator):
        raise MalformedPacket("response authenticator does not match (wrong shared secret?)")
    zeroed, found = _zero_ma(packet.raw, request_authenticator)
    if found is not None and not hmac.compare_digest(_ma_over(zeroed, secret), found):
        raise MalformedPacket("response Message-Authenticator does not match")
    return packet


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding, RFC 2865 §5.2."""
    if len(password) > 128:
        raise ValueError("a User-Password is at most 128 bytes")
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out = bytearray()
    prev = authenticator
    for i in range(0, len(padded), 16):
        digest = mac.md5(secret + prev)
        chunk = _xor16(padded[i : i + 16], digest)
        out += chunk
        prev = chunk
    return bytes(out)


def reveal_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Undo ``hide_password`` (RFC 2865 §5.2); trailing NUL padding is removed."""
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        raise MalformedPacket(f"User-Password of {len(hidden)} bytes is not 16..128 in steps of 16")
    if len(hidden) == 16:  # a code, or a short password: one block
        pad = _MD5(secret + authenticator).digest()
        plain = int.from_bytes(hidden, "big") ^ int.from_bytes(pad, "big")
        return plain.to_bytes(16, "big").rstrip(b"\0")
    out = bytearray()
    prev = authenticator
    for i in range(0, len(hidden), 16):
        chunk = hidden[i : i + 16]
        digest = mac.md5(secret + prev)
        out += _xor16(chunk, digest)
        prev = chunk
    return bytes(out).rstrip(b"\0")


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")
