"""The sans-IO half of relaying MS-CHAPv2 and EAP (``openmfa.radius.relay``): which requests are
relayed, what goes upstream, what of the upstream's answer reaches the NAS. No sockets."""

from __future__ import annotations

import ipaddress
import os
from typing import Any, cast

import pytest

from openmfa.errors import InvalidInput, MalformedPacket
from openmfa.node.radius_clients import REPLY_ATTRIBUTES_DEFAULT, RadiusClient, reply_allow_list
from openmfa.radius import mschap as m
from openmfa.radius import packet as p
from openmfa.radius import relay as r
from openmfa.radius.flows import AccessFlows
from openmfa.radius.relay_flows import RelayFlows
from openmfa.radius.server import ClientTable, RadiusServer

from . import ms_chap_peer as peer

NAS_SECRET, UPSTREAM_SECRET = b"nas-secret-1", b"upstream-secret"
NAS_AUTH, UPSTREAM_AUTH = bytes(range(16)), bytes(range(16, 32))
DEFAULT = r.allow_list(reply_allow_list(REPLY_ATTRIBUTES_DEFAULT))


def request(attributes: list[tuple[int, bytes]]) -> p.Packet:
    raw = p.encode_request(p.ACCESS_REQUEST, 9, attributes, NAS_SECRET, NAS_AUTH)
    return p.decode(raw)


def mschap_attributes(user: str = "alice", ident: int = 7) -> list[tuple[int, bytes]]:
    challenge, response = peer.build_request(user, "pw", os.urandom(16), os.urandom(16), ident)
    return [
        (p.USER_NAME, user.encode()),
        m.ms_vsa(m.MS_CHAP_CHALLENGE, challenge),
        m.ms_vsa(m.MS_CHAP2_RESPONSE, response),
    ]


# -- which requests ---------------------------------------------------------------------------


def test_mschap_and_eap_requests_are_told_apart() -> None:
    attrs = mschap_attributes()
    assert r.is_mschap(attrs) and not r.is_eap(attrs)
    eap = [(p.USER_NAME, b"anonymous"), (r.EAP_MESSAGE, b"\x02\x01\x00\x05\x01")]
    assert r.is_eap(eap) and not r.is_mschap(eap)
    cisco = [(r.VENDOR_SPECIFIC, (9).to_bytes(4, "big") + b"\x01\x05abc")]
    assert not r.is_mschap([*cisco, (p.USER_NAME, b"x")])
    assert not r.is_mschap([(r.VENDOR_SPECIFIC, r.MICROSOFT_ID)])  # no sub-attribute at all


def test_an_mschapv2_request_is_read() -> None:
    parsed = r.parse_mschap(request(mschap_attributes(ident=42)))
    assert parsed.user == "alice" and parsed.ident == 42
    assert [m.vendor_attributes([a])[0][1] for a in parsed.attributes] == [
        m.MS_CHAP_CHALLENGE,
        m.MS_CHAP2_RESPONSE,
    ]


@pytest.mark.parametrize(
    "broken",
    [
        lambda a: a[1:],  # no User-Name
        lambda a: [a[0], a[2]],  # no MS-CHAP-Challenge
        lambda a: a[:2],  # no MS-CHAP2-Response
        lambda a: [a[0], m.ms_vsa(m.MS_CHAP_CHALLENGE, b"short"), a[2]],
        lambda a: [a[0], a[1], m.ms_vsa(m.MS_CHAP2_RESPONSE, bytes(49))],
        lambda a: [a[0], a[1], m.ms_vsa(m.MS_CHAP_RESPONSE, bytes(49))],  # MS-CHAPv1
        lambda a: [a[0], a[1], (r.VENDOR_SPECIFIC, r.MICROSOFT_ID + b"\x19\x40" + bytes(10))],
        lambda a: [(p.USER_NAME, b"\xff\xfe"), a[1], a[2]],
    ],
)
def test_an_unreadable_mschap_request_is_malformed(broken: object) -> None:
    attrs = broken(mschap_attributes())  # type: ignore[operator]
    with pytest.raises(MalformedPacket):
        r.parse_mschap(request(attrs))


# -- EAP-Message ------------------------------------------------------------------------------


def eap_packet(code: int, ident: int, body: bytes) -> bytes:
    return bytes((code, ident)) + (4 + len(body)).to_bytes(2, "big") + body


def test_eap_messages_split_in_253_octets_and_join_again() -> None:
    message = eap_packet(2, 5, os.urandom(600))
    parts = r.eap_split(message)
    assert [len(v) for _, v in parts] == [253, 253, 98] and {k for k, _ in parts} == {79}
    mixed = [(p.USER_NAME, b"x"), parts[0], (p.STATE, b"s"), *parts[1:]]
    assert r.eap_join(mixed) == message
    assert r.eap_identifier(mixed) == 5
    assert r.eap_split(eap_packet(3, 1, b"")) == [(79, b"\x03\x01\x00\x04")]


@pytest.mark.parametrize(
    "value", [b"", b"\x02\x01\x00", b"\x02\x01\x00\x09abc", b"\x02\x01\x00\x04x"]
)
def test_an_eap_message_that_is_not_one_whole_packet_is_malformed(value: bytes) -> None:
    with pytest.raises(MalformedPacket):
        r.eap_join([(r.EAP_MESSAGE, value)] if value else [])


def test_eap_failure_carries_the_identifier() -> None:
    assert r.eap_failure(0x2A) == b"\x04\x2a\x00\x04"
    assert r.eap_failure(256 + 7) == b"\x04\x07\x00\x04"
    assert r.eap_identifier([]) == 0
    accept = p.Packet(p.ACCESS_ACCEPT, 1, bytes(16), [(r.EAP_MESSAGE, b"\x03\x09\x00\x04")])
    assert r.eap_success_identifier(accept) == 9
    # the upstream's EAP-Failure is passed on; without one, OpenMFA's own
    reject = p.Packet(p.ACCESS_REJECT, 1, bytes(16), [(r.EAP_MESSAGE, b"\x04\x03\x00\x04")])
    assert r.eap_reject(reject, 8) == [(79, b"\x04\x03\x00\x04")]
    assert r.eap_reject(None, 8) == [(79, b"\x04\x08\x00\x04")]


# -- the request upstream ---------------------------------------------------------------------


def test_what_goes_upstream() -> None:
    nas = [
        (p.NAS_IP_ADDRESS, bytes((192, 0, 2, 1))),
        (r.CALLING_STATION_ID, b"02-00-00-00-00-01"),
        (12, (1400).to_bytes(4, "big")),  # Framed-MTU
        (p.PROXY_STATE, b"proxy"),
        (p.REPLY_MESSAGE, b"odd"),
    ]
    pkt = request(mschap_attributes() + nas)
    relayed = r.parse_mschap(pkt).attributes
    sent = r.upstream_attributes(pkt, relayed)
    assert sent[0] == (p.USER_NAME, b"alice") and sent[1:3] == relayed
    kinds = [k for k, _ in sent]
    assert p.NAS_IP_ADDRESS in kinds and r.CALLING_STATION_ID in kinds and 12 in kinds
    for never in (p.PROXY_STATE, p.MESSAGE_AUTHENTICATOR, p.REPLY_MESSAGE, p.USER_PASSWORD):
        assert never not in kinds
    assert p.NAS_IDENTIFIER not in kinds  # the NAS named itself by address
    alone = request(mschap_attributes())
    assert (p.NAS_IDENTIFIER, b"openmfa") in r.upstream_attributes(alone, [])


def test_an_eap_round_passes_the_state_unchanged() -> None:
    message = eap_packet(2, 3, os.urandom(300))
    state = os.urandom(18)
    pkt = request([(p.USER_NAME, b"anonymous"), *r.eap_split(message), (p.STATE, state)])
    relayed = r.eap_round(pkt, r.eap_join(pkt.attributes))
    assert r.eap_join(relayed) == message and (p.STATE, state) in relayed
    first = request([(p.USER_NAME, b"anonymous"), *r.eap_split(message)])
    assert p.STATE not in [k for k, _ in r.eap_round(first, message)]


# -- the answer to the NAS --------------------------------------------------------------------


def test_the_allow_list_passes_what_it_names_and_never_what_the_flow_handles() -> None:
    cisco = (r.VENDOR_SPECIFIC, (9).to_bytes(4, "big") + b"\x01\x0cshell:x=1")
    dns = m.ms_vsa(28, bytes((192, 0, 2, 53)))  # MS-Primary-DNS-Server
    reply = [
        (r.CLASS, b"staff"),
        (11, b"filter"),  # Filter-Id
        (p.STATE, b"state"),
        (r.EAP_MESSAGE, b"\x03\x01\x00\x04"),
        (p.REPLY_MESSAGE, b"hi"),
        (p.USER_NAME, b"alice"),
        (69, b"sealed"),  # Tunnel-Password
        cisco,
        dns,
        m.ms_vsa(m.MS_MPPE_SEND_KEY, bytes(34)),
        m.ms_vsa(m.MS_CHAP2_SUCCESS, b"\x01S=" + b"0" * 40),
    ]
    assert r.allowed(reply, DEFAULT) == [(r.CLASS, b"staff"), (11, b"filter"), cisco, dns]
    only_cisco = r.allow_list(reply_allow_list("Class, user-name, Vendor-Specific:9, 18"))
    assert r.allowed(reply, only_cisco) == [
        (r.CLASS, b"staff"),
        (p.REPLY_MESSAGE, b"hi"),
        (p.USER_NAME, b"alice"),
        cisco,
    ]
    assert r.allowed(reply, r.allow_list(reply_allow_list("none"))) == []
    # a Microsoft VSA holding both a handled and a passed sub-attribute: only the passed one
    both = (r.VENDOR_SPECIFIC, dns[1] + m.ms_vsa(m.MS_MPPE_RECV_KEY, bytes(34))[1][4:])
    assert r.allowed([both], DEFAULT) == [dns]


def test_an_allow_list_is_spelled_one_way_and_refuses_what_cannot_pass() -> None:
    assert reply_allow_list(" class ,FILTER-ID,26:311,99, 200,Class") == (
        "Class",
        "Filter-Id",
        "Vendor-Specific:311",
        "Framed-IPv6-Route",
        "200",
    )
    assert reply_allow_list("") == () and reply_allow_list("none") == ()
    for bad in ("State", "80", "EAP-Message", "Tunnel-Password", "Bogus-Name", "0", "256", "1:9"):
        with pytest.raises(InvalidInput):
            reply_allow_list(bad)


def upstream_accept(eap: bool) -> tuple[p.Packet, bytes, bytes]:
    send, recv = os.urandom(16), os.urandom(16)
    attrs: list[tuple[int, bytes]] = [
        m.ms_vsa(m.MS_CHAP2_SUCCESS, b"\x07S=" + b"A" * 40),
        m.ms_vsa(m.MS_MPPE_ENCRYPTION_POLICY, (1).to_bytes(4, "big")),
        m.ms_vsa(m.MS_MPPE_ENCRYPTION_TYPES, (6).to_bytes(4, "big")),
        *m.mppe_key_attributes(send, recv, UPSTREAM_SECRET, UPSTREAM_AUTH),
        (r.CLASS, b"staff"),
        (p.REPLY_MESSAGE, b"not passed"),
        (p.USER_NAME, b"alice"),
    ]
    if eap:
        attrs.append((r.EAP_MESSAGE, b"\x03\x0b\x00\x04"))
    raw = p.encode_response(
        p.Packet(p.ACCESS_REQUEST, 3, UPSTREAM_AUTH), p.ACCESS_ACCEPT, attrs, UPSTREAM_SECRET
    )
    return p.verify_response(raw, UPSTREAM_AUTH, UPSTREAM_SECRET), send, recv


@pytest.mark.parametrize("eap", [False, True])
def test_the_accept_carries_the_keys_re_encrypted_for_the_nas(eap: bool) -> None:
    reply, send, recv = upstream_accept(eap)
    keys = r.Keys(UPSTREAM_SECRET, UPSTREAM_AUTH, NAS_SECRET, NAS_AUTH)
    out = r.accept_attributes(reply, keys, DEFAULT, eap=eap)
    subs = {t: v for vendor, t, v in m.vendor_attributes(out) if vendor == m.MICROSOFT}
    assert m.decrypt_mppe_key(subs[m.MS_MPPE_SEND_KEY], NAS_SECRET, NAS_AUTH) == send
    assert m.decrypt_mppe_key(subs[m.MS_MPPE_RECV_KEY], NAS_SECRET, NAS_AUTH) == recv
    assert subs[m.MS_MPPE_SEND_KEY][:2] != subs[m.MS_MPPE_RECV_KEY][:2]  # distinct salts kept
    assert subs[m.MS_CHAP2_SUCCESS] == b"\x07S=" + b"A" * 40
    assert m.MS_MPPE_ENCRYPTION_POLICY in subs and m.MS_MPPE_ENCRYPTION_TYPES in subs
    kinds = [k for k, _ in out]
    assert (r.CLASS, b"staff") in out and p.REPLY_MESSAGE not in kinds
    assert p.USER_NAME not in kinds  # not in the default list
    assert ((r.EAP_MESSAGE, b"\x03\x0b\x00\x04") in out) is eap
    # what the NAS gets encodes (every value fits an attribute)
    p.encode_response(p.Packet(p.ACCESS_REQUEST, 9, NAS_AUTH), p.ACCESS_ACCEPT, out, NAS_SECRET)


@pytest.mark.parametrize("listed", [False, True])
def test_an_eap_accept_names_the_person_the_push_went_to(listed: bool) -> None:
    """RFC 2865 §5.1: the NAS uses the Access-Accept's User-Name in its accounting. An EAP
    Accept carries exactly one, the person asked (the inner identity, without a DOMAIN\\),
    whether or not the allow-list names User-Name; MS-CHAPv2 gets none of the flow's."""
    reply, _, _ = upstream_accept(True)
    keys = r.Keys(UPSTREAM_SECRET, UPSTREAM_AUTH, NAS_SECRET, NAS_AUTH)
    allow = r.allow_list(reply_allow_list("User-Name,Class")) if listed else DEFAULT
    out = r.accept_attributes(reply, keys, allow, eap=True, user="alice.smith")
    assert [v for k, v in out if k == p.USER_NAME] == [b"alice.smith"]
    mschap = r.accept_attributes(upstream_accept(False)[0], keys, allow, eap=False, user="x")
    assert [v for k, v in mschap if k == p.USER_NAME] == ([b"alice"] if listed else [])


def test_mschap_refusals_carry_an_ms_chap_error() -> None:
    error = b"\x05E=691 R=1 C=" + b"0" * 32 + b" V=3 M=Authentication rejected"
    upstream = p.Packet(p.ACCESS_REJECT, 1, bytes(16), [m.ms_vsa(m.MS_CHAP_ERROR, error)])
    assert r.mschap_reject(upstream, 5) == [m.ms_vsa(m.MS_CHAP_ERROR, error)]
    ((kind, own),) = r.mschap_reject(None, 5)
    ((_, t, value),) = m.vendor_attributes([(kind, own)])
    assert t == m.MS_CHAP_ERROR and value[0] == 5 and value[1:].startswith(b"E=691 R=0 C=")
    bare = p.Packet(p.ACCESS_REJECT, 1, bytes(16), [])
    assert m.vendor_attributes(r.mschap_reject(bare, 6))[0][2][0] == 6


def test_with_the_domains_hash_hash_openmfa_makes_the_answer_itself() -> None:
    """``--primary ntlm``: RFC 2759 §9.2's worked example gives its authenticator response, and
    RFC 3079 §3.5.3's send key reaches the NAS encrypted for its secret."""
    challenge = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
    peer_challenge = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
    nt_response = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
    hash_hash = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
    response = bytes((9, 0)) + peer_challenge + bytes(8) + nt_response
    pkt = request(
        [
            (p.USER_NAME, b"EXAMPLE\\User"),
            m.ms_vsa(m.MS_CHAP_CHALLENGE, challenge),
            m.ms_vsa(m.MS_CHAP2_RESPONSE, response),
        ]
    )
    parsed = r.parse_mschap(pkt)
    assert parsed.person == "User" and parsed.user == "EXAMPLE\\User"
    out = r.mschap_accept(parsed, hash_hash, NAS_SECRET, NAS_AUTH)
    subs = {t: v for _, t, v in m.vendor_attributes(out)}
    assert subs[m.MS_CHAP2_SUCCESS] == b"\x09S=407A5589115FD0D6209F510FE9C04566932CDA56"
    send = m.decrypt_mppe_key(subs[m.MS_MPPE_SEND_KEY], NAS_SECRET, NAS_AUTH)
    assert send == bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
    recv = m.decrypt_mppe_key(subs[m.MS_MPPE_RECV_KEY], NAS_SECRET, NAS_AUTH)
    assert recv == m.mppe_keys_for_server(hash_hash, nt_response)[1] and recv != send
    assert subs[m.MS_MPPE_ENCRYPTION_POLICY] == (1).to_bytes(4, "big")
    ((_, kind, value),) = m.vendor_attributes(r.mschap_reject(None, 9, 648))
    assert kind == m.MS_CHAP_ERROR
    assert value.startswith(b"\x09E=648 R=0 ")


def client(eap: str) -> RadiusClient:
    net = ipaddress.ip_network("192.0.2.1")
    return RadiusClient("gw", net, NAS_SECRET, "radius", True, False, mschap=True, eap=eap)


EAP_START = [(p.USER_NAME, b"anonymous"), (r.EAP_MESSAGE, b"\x02\x01\x00\x05\x01")]


def test_a_draining_node_answers_eap_rounds_but_starts_no_conversation_or_mschap_push() -> None:
    going_on = request([*EAP_START, (p.STATE, b"upstream-state")])
    assert RelayFlows.answered_while_draining(client("relay"), going_on) is True
    new = request(EAP_START)
    assert RelayFlows.answered_while_draining(client("relay"), new) is False
    assert RelayFlows.answered_while_draining(client("off"), going_on) is False
    assert (
        RelayFlows.answered_while_draining(client("relay"), request(mschap_attributes())) is False
    )
    hidden = p.hide_password(b"123456", NAS_SECRET, NAS_AUTH)
    pap = request([(p.USER_NAME, b"alice"), (p.USER_PASSWORD, hidden)])
    assert RelayFlows.answered_while_draining(client("relay"), pap) is None  # PAP's own rules


class DrainingFlows:
    """What the server asks of ``AccessFlows`` while draining, with its own rules (``relay``,
    ``one_round``); a request it takes is noted instead of decided."""

    relay = RelayFlows
    carrying = False
    answered_while_draining = AccessFlows.answered_while_draining
    one_round = AccessFlows.one_round

    def __init__(self) -> None:
        self.taken: list[p.Packet] = []

    def handle(self, client: RadiusClient, pkt: p.Packet, respond: Any, nas: str = "") -> None:
        self.taken.append(pkt)


def test_a_draining_server_leaves_a_new_eap_conversation_to_the_next_server() -> None:
    """The server's own check (``RadiusServer.receive``): a round of a conversation in progress
    is relayed still; the first round of a new one (no State) gets no answer, so the NAS asks
    its next server, and no push will be held here for it."""
    flows = DrainingFlows()
    server = RadiusServer(cast(Any, flows), ClientTable([client("relay")]), 30.0)
    server.draining = True

    def sent(ident: int, attributes: list[tuple[int, bytes]]) -> bytes:
        return p.encode_request(p.ACCESS_REQUEST, ident, attributes, NAS_SECRET, os.urandom(16))

    assert server.receive(sent(1, EAP_START), ("192.0.2.1", 1812)) is None
    assert flows.taken == [] and server.stats["drained"] == 1
    server.receive(sent(2, [*EAP_START, (p.STATE, b"upstream-state")]), ("192.0.2.1", 1812))
    assert [q.get(p.STATE) for q in flows.taken] == [b"upstream-state"]
    assert server.stats["drained"] == 1
    server.receive(sent(3, mschap_attributes()), ("192.0.2.1", 1812))
    assert server.stats["drained"] == 2 and len(flows.taken) == 1
    server.draining = False
    server.receive(sent(4, EAP_START), ("192.0.2.1", 1812))
    assert len(flows.taken) == 2
