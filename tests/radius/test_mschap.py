"""MS-CHAPv2's server half (``openmfa.radius.mschap``) against the RFC vectors and against an
independent peer (``ms_chap_peer``); RFC 2548 key encryption; malformed input. No sockets."""

from __future__ import annotations

import contextlib
import hashlib
import os

import pytest

from openmfa.errors import MalformedPacket
from openmfa.radius import mschap as m
from openmfa.radius import packet as p

from . import ms_chap_peer as peer

# RFC 2759 §9.2 (and the same inputs in RFC 3079 §3.5.3).
USER, PASSWORD = "User", "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTH_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 §3.5.3.
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")

SECRET, OTHER_SECRET = b"testing123", b"a-different-secret"
REQUEST_AUTH = bytes(range(16))


def test_md4_rfc1320_vectors() -> None:
    for text, digest in (
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ):
        assert peer.md4(text).hex() == digest


def test_rfc2759_worked_example_peer_side() -> None:
    assert USER.encode() == bytes.fromhex("55736572")
    assert PASSWORD.encode("utf-16-le") == bytes.fromhex("63006C00690065006E0074005000610073007300")
    assert peer.peer_challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert peer.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert peer.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert peer.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD) == NT_RESPONSE
    assert peer.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH
    assert (
        peer.generate_authenticator_response(
            PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
        )
        == AUTH_RESPONSE
    )


def test_rfc2759_worked_example_server_side() -> None:
    assert m.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER.encode()) == CHALLENGE
    got = m.authenticator_response(
        PASSWORD_HASH_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, b"User"
    )
    assert got == AUTH_RESPONSE
    assert len(got) == m.AUTHENTICATOR_RESPONSE_LENGTH
    # §8.2: a domain prefix is not part of the hash, on either side.
    assert m.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"EXAMPLE\\User") == CHALLENGE
    assert peer.peer_challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "EXAMPLE\\User") == CHALLENGE
    # The peer accepts exactly this one, and not one from another password.
    assert peer.check_authenticator_response(
        got, PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )
    other = m.authenticator_response(
        peer.hash_nt_password_hash(peer.nt_password_hash("wrong")),
        NT_RESPONSE,
        PEER_CHALLENGE,
        AUTH_CHALLENGE,
        b"User",
    )
    assert not peer.check_authenticator_response(
        other, PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )


def test_rfc3079_key_vectors_both_sides() -> None:
    assert m.master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY
    assert peer.peer_master_key(PASSWORD, NT_RESPONSE) == MASTER_KEY
    # §3.5.3's SendStartKey128 is the server's send key (Magic3), which is the peer's receive key.
    assert m.asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True) == SEND_START_KEY
    assert m.asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=False) == SEND_START_KEY
    assert m.asymmetric_start_key(MASTER_KEY, 8, True, True) == SEND_START_KEY[:8]
    send, recv = m.mppe_keys_for_server(PASSWORD_HASH_HASH, NT_RESPONSE)
    peer_send, peer_recv = peer.peer_start_keys(PASSWORD, NT_RESPONSE)
    assert send == SEND_START_KEY == peer_recv
    assert recv == peer_send == m.asymmetric_start_key(MASTER_KEY, 16, False, True)
    assert send != recv and len(recv) == 16
    # The RFC 3079 §3.5.3 first 128-bit session key: GetNewKeyFromSHA(start, start) (§3.3).
    session = hashlib.sha1(SEND_START_KEY + bytes(40) + SEND_START_KEY + b"\xf2" * 40)
    assert session.digest()[:16] == bytes.fromhex("405CB2247A7956E6E211007AE27B22D4")


def test_build_request_is_the_rfc2548_layout_and_parses() -> None:
    challenge, response = peer.build_request(USER, PASSWORD, AUTH_CHALLENGE, PEER_CHALLENGE, 7)
    assert challenge == AUTH_CHALLENGE
    parsed = m.parse_chap2_response(response)
    assert parsed == m.Chap2Response(7, 0, PEER_CHALLENGE, NT_RESPONSE)
    assert response[18:26] == bytes(8)


def test_random_exchanges_agree_between_peer_and_server() -> None:
    for i in range(5):
        auth, peer_chal = os.urandom(16), os.urandom(16)
        user, password = f"user{i}", f"pässwörd-{i}"
        _, response = peer.build_request(user, password, auth, peer_chal, i)
        r = m.parse_chap2_response(response)
        hash_hash = peer.hash_nt_password_hash(peer.nt_password_hash(password))
        answer = m.authenticator_response(
            hash_hash, r.nt_response, r.peer_challenge, auth, user.encode()
        )
        assert peer.check_authenticator_response(
            answer, password, r.nt_response, peer_chal, auth, user
        )
        send, recv = m.mppe_keys_for_server(hash_hash, r.nt_response)
        assert (recv, send) == peer.peer_start_keys(password, r.nt_response)


def test_success_and_error_values() -> None:
    assert m.chap2_success(9, AUTH_RESPONSE) == b"\x09" + AUTH_RESPONSE
    with pytest.raises(ValueError):
        m.chap2_success(9, AUTH_RESPONSE[:-1])
    err = m.chap_error(3, challenge=AUTH_CHALLENGE, message="Bad\npassword")
    assert err == b"\x03E=691 R=0 C=5B5D7C7D7B3F2F3E3C2C602132262628 V=3 M=Bad?password"
    assert m.chap_error(3, 648, retry=True).startswith(b"\x03E=648 R=1 C=")
    assert len(m.chap_error(1)) == len(err) - len("Bad?password") + len("Authentication failed")


def test_vendor_attributes_and_ms_vsa() -> None:
    attrs = [
        (1, b"alice"),
        m.ms_vsa(m.MS_CHAP_CHALLENGE, AUTH_CHALLENGE),
        (26, (9).to_bytes(4, "big") + b"\x01\x05abc\x02\x02"),  # Cisco, two sub-attributes
        (26, (4846).to_bytes(4, "big") + b"\x00\x01\x00"),  # another vendor's own layout
        m.ms_vsa(m.MS_CHAP2_RESPONSE, b"x" * 50),
    ]
    assert attrs[1] == (26, b"\x00\x00\x01\x37\x0b\x12" + AUTH_CHALLENGE)
    assert m.vendor_attributes(attrs) == [
        (311, 11, AUTH_CHALLENGE),
        (9, 1, b"abc"),
        (9, 2, b""),
        (311, 25, b"x" * 50),
    ]
    assert m.ms_get(attrs, m.MS_CHAP2_RESPONSE) == b"x" * 50
    assert m.ms_get(attrs, m.MS_CHAP2_SUCCESS) is None
    # Round trip through the packet codec.
    raw = p.encode_request(p.ACCESS_REQUEST, 1, attrs, SECRET, REQUEST_AUTH)
    assert m.ms_get(p.decode(raw).attributes, m.MS_CHAP_CHALLENGE) == AUTH_CHALLENGE
    with pytest.raises(ValueError):
        m.ms_vsa(m.MS_CHAP_ERROR, b"x" * 248)
    assert len(m.ms_vsa(m.MS_CHAP_ERROR, b"x" * 247)[1]) == 253


def test_mppe_key_round_trip_and_recode() -> None:
    key = bytes(range(100, 116))
    for salt in (None, b"\x80\x00", b"\xff\xff"):
        value = m.encrypt_mppe_key(key, SECRET, REQUEST_AUTH, salt)
        assert len(value) == 34 and value[0] & 0x80
        if salt is not None:
            assert value[:2] == salt
        assert m.decrypt_mppe_key(value, SECRET, REQUEST_AUTH) == key
    # RFC 2548 §2.4.2 by hand: c(1) = p(1) xor MD5(S + R + A), c(2) = p(2) xor MD5(S + c(1)).
    value = m.encrypt_mppe_key(key, SECRET, REQUEST_AUTH, b"\x81\x02")
    plain = bytes([16]) + key + bytes(15)
    b1 = hashlib.md5(SECRET + REQUEST_AUTH + b"\x81\x02").digest()
    c1 = bytes(x ^ y for x, y in zip(plain[:16], b1, strict=True))
    b2 = hashlib.md5(SECRET + c1).digest()
    c2 = bytes(x ^ y for x, y in zip(plain[16:], b2, strict=True))
    assert value == b"\x81\x02" + c1 + c2
    # Longer and empty keys pad to whole blocks.
    for k in (b"", bytes(15), bytes(31), os.urandom(32)):
        v = m.encrypt_mppe_key(k, SECRET, REQUEST_AUTH)
        assert (len(v) - 2) % 16 == 0 and m.decrypt_mppe_key(v, SECRET, REQUEST_AUTH) == k
    # A proxy's recode: the NAS's secret and its request's authenticator; the salt is kept.
    nas_auth = bytes(range(50, 66))
    recoded = m.recode_mppe_key(value, SECRET, REQUEST_AUTH, OTHER_SECRET, nas_auth)
    assert recoded[:2] == value[:2] and recoded != value
    assert m.decrypt_mppe_key(recoded, OTHER_SECRET, nas_auth) == key
    with pytest.raises(ValueError):
        m.encrypt_mppe_key(key, SECRET, REQUEST_AUTH, b"\x01\x02")  # high bit clear


def test_mppe_key_attributes_for_a_reply() -> None:
    send, recv = m.mppe_keys_for_server(PASSWORD_HASH_HASH, NT_RESPONSE)
    attrs = m.mppe_key_attributes(send, recv, SECRET, REQUEST_AUTH)
    send_value = m.ms_get(attrs, m.MS_MPPE_SEND_KEY)
    recv_value = m.ms_get(attrs, m.MS_MPPE_RECV_KEY)
    assert send_value is not None and recv_value is not None
    assert send_value[:2] != recv_value[:2]
    assert m.decrypt_mppe_key(send_value, SECRET, REQUEST_AUTH) == send
    assert m.decrypt_mppe_key(recv_value, SECRET, REQUEST_AUTH) == recv


def test_malformed_inputs_raise_malformed_packet_only() -> None:
    good_vsa = m.ms_vsa(m.MS_MPPE_SEND_KEY, m.encrypt_mppe_key(bytes(16), SECRET, REQUEST_AUTH))[1]
    response = peer.build_request(USER, PASSWORD, AUTH_CHALLENGE, PEER_CHALLENGE, 1)[1]
    key_value = m.encrypt_mppe_key(bytes(16), SECRET, REQUEST_AUTH)
    refused = 0
    for cut in range(len(good_vsa)):
        value = good_vsa[:cut]
        try:
            m.vendor_attributes([(26, value)])
        except MalformedPacket:
            refused += 1
    assert refused == len(good_vsa)  # every truncation of a Microsoft VSA is refused
    # Each byte of the sub-attribute length, wrong: too short, too long.
    for bad_len in (0, 1, len(good_vsa) - 3, len(good_vsa) - 5, 255):
        bad = good_vsa[:5] + bytes([bad_len]) + good_vsa[6:]
        with pytest.raises(MalformedPacket):
            m.ms_get([(26, bad)], m.MS_MPPE_SEND_KEY)
    for cut in range(len(response)):
        with pytest.raises(MalformedPacket):
            m.parse_chap2_response(response[:cut])
    with pytest.raises(MalformedPacket):
        m.parse_chap2_response(response + b"\x00")
    for cut in range(len(key_value)):
        if cut >= 18 and (cut - 2) % 16 == 0:
            continue  # a whole-block prefix is structurally sound; its length octet decides
        with pytest.raises(MalformedPacket):
            m.decrypt_mppe_key(key_value[:cut], SECRET, REQUEST_AUTH)
    with pytest.raises(MalformedPacket):
        m.decrypt_mppe_key(bytes([key_value[0] & 0x7F]) + key_value[1:], SECRET, REQUEST_AUTH)
    # Random garbage: MalformedPacket or a value, never another exception.
    for _ in range(300):
        blob = os.urandom(os.urandom(1)[0] % 60)
        with contextlib.suppress(MalformedPacket):
            m.decrypt_mppe_key(b"\x80" + blob, SECRET, REQUEST_AUTH)
        with contextlib.suppress(MalformedPacket):
            m.vendor_attributes([(26, b"\x00\x00\x01\x37" + blob)])
    # A wrong secret gives a key length that runs past the value, at least most times.
    wrong = 0
    for _ in range(50):
        v = m.encrypt_mppe_key(os.urandom(16), SECRET, REQUEST_AUTH)
        try:
            m.decrypt_mppe_key(v, OTHER_SECRET, REQUEST_AUTH)
        except MalformedPacket:
            wrong += 1
    assert wrong > 30
