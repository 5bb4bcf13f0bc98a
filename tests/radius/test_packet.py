"""The RADIUS codec on its own: no sockets (sans-IO)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openmfa.radius import packet as p

SECRET = b"testing123"
AUTH = bytes(range(16))


def request(attrs: list[tuple[int, bytes]], ident: int = 7) -> p.Packet:
    return p.decode(p.encode_request(p.ACCESS_REQUEST, ident, attrs, SECRET, AUTH))


def test_password_hiding_round_trip_and_rfc2865_shape() -> None:
    for password in (b"", b"x", b"a" * 16, b"b" * 17, b"\xc3\xa9t\xc3\xa9" * 10):
        hidden = p.hide_password(password, SECRET, AUTH)
        assert len(hidden) % 16 == 0 and len(hidden) >= 16
        assert p.reveal_password(hidden, SECRET, AUTH) == password
    # RFC 2865 §5.2: first block is p1 XOR MD5(S + RA).
    hidden = p.hide_password(b"secret", SECRET, AUTH)
    digest = hashlib.md5(SECRET + AUTH).digest()
    assert bytes(a ^ b for a, b in zip(hidden, digest, strict=True)) == b"secret" + bytes(10)


def test_bad_password_lengths_are_malformed() -> None:
    for bad in (b"", b"x" * 15, b"x" * 144):
        with pytest.raises(p.MalformedPacket):
            p.reveal_password(bad, SECRET, AUTH)


def test_request_message_authenticator() -> None:
    pkt = request([(p.USER_NAME, b"alice")])
    assert pkt.attributes[0][0] == p.MESSAGE_AUTHENTICATOR
    assert p.request_ma_status(pkt, SECRET) is True
    assert p.request_ma_status(pkt, b"wrong") is False
    plain = p.decode(bytes((1, 1, 0, 27)) + AUTH + bytes((1, 7)) + b"alice")
    assert p.request_ma_status(plain, SECRET) is None


def test_response_is_signed_and_echoes_proxy_state() -> None:
    req = request([(p.USER_NAME, b"alice"), (p.PROXY_STATE, b"hop1"), (p.PROXY_STATE, b"hop2")])
    raw = p.encode_response(req, p.ACCESS_ACCEPT, [(p.REPLY_MESSAGE, b"hi")], SECRET)
    resp = p.verify_response(raw, AUTH, SECRET)
    assert resp.code == p.ACCESS_ACCEPT and resp.identifier == 7
    assert resp.attributes[0][0] == p.MESSAGE_AUTHENTICATOR  # first: BlastRADIUS
    assert resp.all(p.PROXY_STATE) == [b"hop1", b"hop2"]
    # Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret)
    assert resp.authenticator == hashlib.md5(raw[:4] + AUTH + raw[20:] + SECRET).digest()
    zeroed = bytearray(raw)
    zeroed[4:20] = AUTH
    zeroed[22:38] = bytes(16)
    assert hmac.new(SECRET, bytes(zeroed), hashlib.md5).digest() == resp.attributes[0][1]
    with pytest.raises(p.MalformedPacket):
        p.verify_response(raw, AUTH, b"other secret")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x01\x00\x13" + bytes(15),  # shorter than a header
        b"\x01\x01\x00\x10" + bytes(16),  # Length < 20
        b"\x01\x01\x10\x01" + bytes(16),  # Length > 4096
        b"\x01\x01\x00\x30" + bytes(16),  # Length beyond the datagram
        b"\x01\x01\x00\x17" + bytes(16) + b"\x01\x01\x00",  # attribute length 1
        b"\x01\x01\x00\x17" + bytes(16) + b"\x01\x09\x00",  # attribute runs past the packet
        b"\x01\x01\x00\x15" + bytes(16) + b"\x01",  # half an attribute header
        b"\x01\x01\x00\x18" + bytes(16) + b"\x50\x04\x00\x00",  # MA of 2 bytes
        b"\x01\x01\x00\x38" + bytes(16) + (b"\x50\x12" + bytes(16)) * 2,  # two MAs
    ],
)
def test_malformed_packets(data: bytes) -> None:
    with pytest.raises(p.MalformedPacket):
        p.decode(data)


def test_padding_beyond_length_is_ignored() -> None:
    raw = p.encode_request(p.ACCESS_REQUEST, 1, [(p.USER_NAME, b"bob")], SECRET, AUTH)
    pkt = p.decode(raw + b"\0" * 10)
    assert pkt.raw == raw and p.request_ma_status(pkt, SECRET) is True


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decode_never_raises_anything_else(data: bytes) -> None:
    try:
        pkt = p.decode(data)
    except p.MalformedPacket:
        return
    p.request_ma_status(pkt, SECRET)
    for hidden in pkt.all(p.USER_PASSWORD):
        with contextlib.suppress(p.MalformedPacket):
            p.reveal_password(hidden, SECRET, pkt.authenticator)


@settings(max_examples=1000, deadline=None)
@given(
    st.binary(min_size=20, max_size=200).map(lambda b: b[:2] + len(b).to_bytes(2, "big") + b[4:])
)
def test_fuzz_headers_with_consistent_length(data: bytes) -> None:
    with contextlib.suppress(p.MalformedPacket):
        p.decode(data)


def test_origin_is_the_calling_station_else_the_nas() -> None:
    """Where a person signs in from (kept, sealed, with the audit row): Calling-Station-Id,
    else NAS-IP-Address; what is not printable is dropped, and at most 64 octets are read."""
    station = (p.CALLING_STATION_ID, b"198.51.100.23")
    nas = (p.NAS_IP_ADDRESS, bytes([10, 0, 0, 1]))
    assert p.origin_of(request([station, nas])) == "198.51.100.23"
    assert p.origin_of(request([nas])) == "10.0.0.1"
    assert p.origin_of(request([(p.NAS_IP_ADDRESS, b"\x01\x02")])) == ""  # not an IPv4 address
    assert p.origin_of(request([])) == ""
    assert p.origin_of(request([(p.CALLING_STATION_ID, b"AA-BB\r\n\x00\xff")])) == "AA-BB\ufffd"
    assert p.origin_of(request([(p.CALLING_STATION_ID, b"9" * 200)])) == "9" * 64
