"""Relaying MS-CHAPv2 and EAP to the upstream RADIUS server (``[radius_upstream]``) — the
sans-IO half: which requests are relayed, what is sent upstream, and what of the upstream's
answer reaches the NAS. The flows themselves (lock, push, answer) are ``relay_flows``.

Invariants owned here:
- Upstream gets a new Access-Request of OpenMFA's own (its Identifier, a fresh Request
  Authenticator, a Message-Authenticator under the upstream's secret), carrying the NAS's
  User-Name, the MS-CHAP attributes or the EAP-Message(s) with the NAS's State as it is (RFC
  3579 §3.3: a proxy passes State on unchanged), and the attributes that describe the NAS and
  the caller (``FORWARDED``) — never a User-Password, Proxy-State or the NAS's own
  Message-Authenticator.
- What goes back to the NAS is built here from the upstream's answer, never passed through as
  bytes: EAP-Message(s) (re-split in 253-octet attributes, RFC 3579 §3.1), State and
  Session-Timeout of a challenge; the MS-CHAP2-Success and MS-MPPE-Encryption-Policy/Types;
  the MS-MPPE-Send/Recv-Key re-encrypted from the upstream's secret and OpenMFA's Request
  Authenticator to the NAS's secret and the NAS's Request Authenticator (RFC 2548 §2.4.2,
  §2.4.3); and of everything else, only what the client's allow-list names (``allowed``),
  never an attribute sealed with the upstream's secret or one the flow handles itself. An EAP
  Access-Accept names the person the push went to in its one User-Name (RFC 2865 §5.1: the NAS
  uses it in its Accounting-Requests), whatever the allow-list says.
- An EAP-Failure (RFC 3748 §4.2) carries the Identifier of the EAP packet it answers: the
  NAS's last EAP-Response, or the upstream's EAP-Success it replaces.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import MalformedPacket
from ..node.radius_clients import NEVER_PASSED, REPLY_ATTRIBUTES
from . import mschap as ms
from . import packet as p

CLASS, VENDOR_SPECIFIC, SESSION_TIMEOUT = 25, 26, 27
CALLED_STATION_ID, CALLING_STATION_ID = 30, 31
EAP_MESSAGE = 79
EAP_SUCCESS, EAP_FAILURE = 3, 4
MICROSOFT_ID = ms.MICROSOFT.to_bytes(4, "big")
EAP_CHUNK = 253

FORWARDED = frozenset(
    {
        p.NAS_IP_ADDRESS,
        5,  # NAS-Port
        6,  # Service-Type
        7,  # Framed-Protocol
        12,  # Framed-MTU (EAP's TLS fragments are sized by it)
        CALLED_STATION_ID,
        CALLING_STATION_ID,
        p.NAS_IDENTIFIER,
        44,  # Acct-Session-Id
        61,  # NAS-Port-Type
        77,  # Connect-Info
        87,  # NAS-Port-Id
        95,  # NAS-IPv6-Address
    }
)
"""What the NAS said about itself and the caller, passed upstream as it is (its policy may
look at them: which NAS, which station)."""

MS_HANDLED = frozenset(
    {
        ms.MS_CHAP_RESPONSE,
        ms.MS_CHAP_ERROR,
        3,  # MS-CHAP-CPW-1
        4,  # MS-CHAP-CPW-2
        5,  # MS-CHAP-LM-Enc-PW
        6,  # MS-CHAP-NT-Enc-PW
        ms.MS_MPPE_ENCRYPTION_POLICY,
        ms.MS_MPPE_ENCRYPTION_TYPES,
        ms.MS_CHAP_CHALLENGE,
        12,  # MS-CHAP-MPPE-Keys (sealed with the upstream's secret)
        ms.MS_MPPE_SEND_KEY,
        ms.MS_MPPE_RECV_KEY,
        ms.MS_CHAP2_RESPONSE,
        ms.MS_CHAP2_SUCCESS,
        27,  # MS-CHAP2-CPW
    }
)
"""Microsoft attributes (RFC 2548) the flows handle themselves or that are sealed with the
upstream's secret: never passed by an allow-list's Vendor-Specific."""
MS_KEPT = (ms.MS_CHAP2_SUCCESS, ms.MS_MPPE_ENCRYPTION_POLICY, ms.MS_MPPE_ENCRYPTION_TYPES)
"""Microsoft attributes of an Access-Accept passed to the NAS as they are."""


# -- which requests --------------------------------------------------------------------------


def is_mschap(attributes: list[tuple[int, bytes]]) -> bool:
    """An MS-CHAP request (RFC 2548 §2.3.2): a Microsoft Vendor-Specific attribute holding an
    MS-CHAP2-Response or MS-CHAP-Challenge (only looked at without a User-Password)."""
    asked = (ms.MS_CHAP2_RESPONSE, ms.MS_CHAP_CHALLENGE, ms.MS_CHAP_RESPONSE)
    return any(
        kind == VENDOR_SPECIFIC
        and value[:4] == MICROSOFT_ID
        and len(value) > 4
        and value[4] in asked
        for kind, value in attributes
    )


def is_eap(attributes: list[tuple[int, bytes]]) -> bool:
    return any(kind == EAP_MESSAGE for kind, _ in attributes)


@dataclass(frozen=True, slots=True)
class MsChap:
    """An MS-CHAPv2 request's parts, checked (RFC 2548 §2.3.2, RFC 2759)."""

    user: str
    """The User-Name as sent (``DOMAIN\\user`` or ``user``): what the upstream is given."""
    ident: int
    attributes: list[tuple[int, bytes]]
    """The Microsoft Vendor-Specific attributes to relay."""
    challenge: bytes
    response: ms.Chap2Response

    @property
    def person(self) -> str:
        """Whom OpenMFA asks for the second factor: the User-Name without a ``DOMAIN\\``
        (RFC 2759 §8.2 leaves it out too), as Windows clients prefix it."""
        return self.user.rpartition("\\")[2]


def parse_mschap(pkt: p.Packet) -> MsChap:
    """MalformedPacket unless the request holds a User-Name, a 16-octet MS-CHAP-Challenge and
    an MS-CHAP2-Response of 50 octets (an MS-CHAPv1 MS-CHAP-Response is not taken)."""
    name = pkt.get(p.USER_NAME)
    if not name:
        raise MalformedPacket("an MS-CHAPv2 request without a User-Name")
    try:
        user = name.decode()
    except UnicodeDecodeError:
        raise MalformedPacket("a User-Name that is not UTF-8") from None
    challenge = ms.ms_get(pkt.attributes, ms.MS_CHAP_CHALLENGE)
    response = ms.ms_get(pkt.attributes, ms.MS_CHAP2_RESPONSE)
    if response is None:
        raise MalformedPacket("no MS-CHAP2-Response (MS-CHAPv1 is not accepted)")
    if challenge is None or len(challenge) != 16:
        raise MalformedPacket("an MS-CHAPv2 request needs an MS-CHAP-Challenge of 16 octets")
    parsed = ms.parse_chap2_response(response)
    relayed = [
        ms.ms_vsa(ms.MS_CHAP_CHALLENGE, challenge),
        ms.ms_vsa(ms.MS_CHAP2_RESPONSE, response),
    ]
    return MsChap(user, parsed.ident, relayed, challenge, parsed)


# -- EAP-Message (RFC 3579 §3.1) -------------------------------------------------------------


def eap_join(attributes: list[tuple[int, bytes]]) -> bytes:
    """The EAP packet the EAP-Message attributes carry, in order; MalformedPacket unless it is
    one whole EAP packet (RFC 3748 §4: its Length is what the attributes hold)."""
    message = b"".join(v for k, v in attributes if k == EAP_MESSAGE)
    if len(message) < 4 or int.from_bytes(message[2:4], "big") != len(message):
        raise MalformedPacket(f"EAP-Message attributes hold no whole EAP packet ({len(message)})")
    return message


def eap_split(message: bytes) -> list[tuple[int, bytes]]:
    """EAP-Message attributes carrying ``message``, 253 octets each but the last."""
    return [(EAP_MESSAGE, message[i : i + EAP_CHUNK]) for i in range(0, len(message), EAP_CHUNK)]


def eap_identifier(attributes: list[tuple[int, bytes]]) -> int:
    """The Identifier of the EAP packet in these attributes (0 when there is none)."""
    for kind, value in attributes:
        if kind == EAP_MESSAGE and len(value) >= 2:
            return value[1]
    return 0


def eap_failure(identifier: int) -> bytes:
    """An EAP-Failure (RFC 3748 §4.2): code 4, the Identifier, Length 4."""
    return bytes((EAP_FAILURE, identifier & 0xFF, 0, 4))


# -- the request upstream --------------------------------------------------------------------


def upstream_attributes(pkt: p.Packet, relayed: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """What OpenMFA sends upstream for this NAS request: its User-Name, ``relayed`` (the MS-CHAP
    attributes, or the EAP-Message(s) and State), and the ``FORWARDED`` ones; a
    NAS-Identifier "openmfa" when the NAS named itself neither way (RFC 2865 §4.1)."""
    out: list[tuple[int, bytes]] = []
    name = pkt.get(p.USER_NAME)
    if name is not None:
        out.append((p.USER_NAME, name))
    out += relayed
    nas = [(k, v) for k, v in pkt.attributes if k in FORWARDED]
    if not any(k in (p.NAS_IP_ADDRESS, p.NAS_IDENTIFIER, 95) for k, _ in nas):
        nas.append((p.NAS_IDENTIFIER, b"openmfa"))
    return out + nas


def eap_round(pkt: p.Packet, message: bytes) -> list[tuple[int, bytes]]:
    """The EAP-Message(s) and the NAS's State (unchanged) to relay."""
    state = pkt.all(p.STATE)
    return eap_split(message) + [(p.STATE, s) for s in state[:1]]


# -- the answer to the NAS -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowed:
    """A client's allow-list (``node.radius_clients.reply_allow_list``) as numbers."""

    types: frozenset[int]
    vendors: frozenset[int] | None
    """Vendors whose Vendor-Specific attributes pass (None: every vendor's)."""


@functools.lru_cache(maxsize=256)
def allow_list(entries: tuple[str, ...]) -> Allowed:
    types: set[int] = set()
    vendors: set[int] = set()
    every_vendor = False
    for entry in entries:
        name, _, vendor = entry.partition(":")
        number = REPLY_ATTRIBUTES.get(name) or (int(name) if name.isdigit() else 0)
        if vendor and number == VENDOR_SPECIFIC:
            vendors.add(int(vendor))
        elif number == VENDOR_SPECIFIC:
            every_vendor = True
        elif number and number not in NEVER_PASSED:
            types.add(number)
    if vendors or every_vendor:
        types.add(VENDOR_SPECIFIC)
    return Allowed(frozenset(types), None if every_vendor else frozenset(vendors))


def allowed(attributes: Iterable[tuple[int, bytes]], allow: Allowed) -> list[tuple[int, bytes]]:
    """The attributes the allow-list passes. Microsoft's own (``MS_HANDLED``) never pass here:
    a Vendor-Specific holding one is rebuilt without it."""
    out: list[tuple[int, bytes]] = []
    for kind, value in attributes:
        if kind not in allow.types or kind in NEVER_PASSED:
            continue
        if kind != VENDOR_SPECIFIC:
            out.append((kind, value))
            continue
        if len(value) < 5:
            continue
        vendor = int.from_bytes(value[:4], "big")
        if allow.vendors is not None and vendor not in allow.vendors:
            continue
        if vendor != ms.MICROSOFT:
            out.append((kind, value))
            continue
        try:
            subs = ms.vendor_attributes([(kind, value)])
        except MalformedPacket:
            continue
        out += [ms.ms_vsa(t, v) for _, t, v in subs if t not in MS_HANDLED]
    return out


@dataclass(frozen=True, slots=True)
class Keys:
    """The secrets and Request Authenticators an MPPE key is re-encrypted between."""

    upstream_secret: bytes
    upstream_authenticator: bytes
    """The Request Authenticator of OpenMFA's request to the upstream."""
    nas_secret: bytes
    nas_authenticator: bytes


def accept_attributes(
    reply: p.Packet, keys: Keys, allow: Allowed, *, eap: bool, user: str = ""
) -> list[tuple[int, bytes]]:
    """The Access-Accept for the NAS from the upstream's: the EAP-Success (``eap``), the
    MS-CHAP2-Success and MPPE policy as they are, the MPPE keys re-encrypted for the NAS, and
    what the allow-list passes; with ``eap``, ``user`` (the person the push went to) as its
    User-Name in place of any the allow-list would pass. MalformedPacket when the keys do not
    decrypt (the upstream's secret is wrong, or they were not made for this request)."""
    out: list[tuple[int, bytes]] = []
    named = user.encode()
    if eap:
        message = b"".join(v for k, v in reply.attributes if k == EAP_MESSAGE)
        out += eap_split(message)
        if 0 < len(named) <= 253:
            out.append((p.USER_NAME, named))
    subs = ms.vendor_attributes(reply.attributes)
    out += [ms.ms_vsa(t, v) for vendor, t, v in subs if vendor == ms.MICROSOFT and t in MS_KEPT]
    for vendor, t, v in subs:
        if vendor == ms.MICROSOFT and t in (ms.MS_MPPE_SEND_KEY, ms.MS_MPPE_RECV_KEY):
            recoded = ms.recode_mppe_key(
                v,
                keys.upstream_secret,
                keys.upstream_authenticator,
                keys.nas_secret,
                keys.nas_authenticator,
            )
            out.append(ms.ms_vsa(t, recoded))
    passed = allowed(reply.attributes, allow)
    if eap and 0 < len(named) <= 253:
        passed = [(k, v) for k, v in passed if k != p.USER_NAME]
    return out + passed


def challenge_attributes(reply: p.Packet) -> list[tuple[int, bytes]]:
    """The Access-Challenge for the NAS: the upstream's EAP-Message(s), State and
    Session-Timeout (RFC 3579 §2.6.1: how long the NAS waits for the peer)."""
    message = b"".join(v for k, v in reply.attributes if k == EAP_MESSAGE)
    kept = [(k, v) for k, v in reply.attributes if k in (p.STATE, SESSION_TIMEOUT)]
    return eap_split(message) + kept


def mschap_accept(
    request: MsChap, password_hash_hash: bytes, nas_secret: bytes, nas_authenticator: bytes
) -> list[tuple[int, bytes]]:
    """The Access-Accept's attributes when OpenMFA itself holds the PasswordHashHash (Active
    Directory through ``ntlm_auth``): MS-CHAP2-Success (RFC 2759 §8.7), the MPPE keys (RFC
    3079 §3.4) encrypted for the NAS, and FreeRADIUS's policy (encryption allowed; 40- or
    128-bit RC4)."""
    r = request.response
    user = request.user.encode()
    success = ms.authenticator_response(
        password_hash_hash, r.nt_response, r.peer_challenge, request.challenge, user
    )
    send, recv = ms.mppe_keys_for_server(password_hash_hash, r.nt_response)
    return [
        ms.ms_vsa(ms.MS_CHAP2_SUCCESS, ms.chap2_success(request.ident, success)),
        *ms.mppe_key_attributes(send, recv, nas_secret, nas_authenticator),
        ms.ms_vsa(ms.MS_MPPE_ENCRYPTION_POLICY, (1).to_bytes(4, "big")),
        ms.ms_vsa(ms.MS_MPPE_ENCRYPTION_TYPES, (6).to_bytes(4, "big")),
    ]


def eap_success_identifier(reply: p.Packet) -> int:
    """The Identifier of an Access-Accept's EAP-Success (for the EAP-Failure that replaces it)."""
    return eap_identifier(reply.attributes)


def mschap_reject(reply: p.Packet | None, ident: int, code: int = 691) -> list[tuple[int, bytes]]:
    """An Access-Reject's attributes for an MS-CHAPv2 request: the upstream's MS-CHAP-Error
    when it sent one, else one of OpenMFA's (E=``code``, no retry)."""
    if reply is not None:
        try:
            error = ms.ms_get(reply.attributes, ms.MS_CHAP_ERROR)
        except MalformedPacket:
            error = None
        if error is not None and 0 < len(error) <= 247:
            return [ms.ms_vsa(ms.MS_CHAP_ERROR, error)]
    return [ms.ms_vsa(ms.MS_CHAP_ERROR, ms.chap_error(ident, code))]


def answer_length(request: p.Packet, attributes: list[tuple[int, bytes]]) -> int:
    """The length of the answer to ``request`` carrying ``attributes``: the header, the
    Message-Authenticator and the request's Proxy-States echoed (``packet.encode_response``);
    above 4096 octets (RFC 2865 §3) it cannot be sent."""
    echoed = sum(2 + len(v) for v in request.all(p.PROXY_STATE))
    return p.MIN_LENGTH + 18 + sum(2 + len(v) for _, v in attributes) + echoed


def eap_reject(reply: p.Packet | None, identifier: int) -> list[tuple[int, bytes]]:
    """An Access-Reject's attributes for an EAP request: the upstream's EAP-Message (its
    EAP-Failure) when it sent one, else an EAP-Failure for ``identifier``."""
    if reply is not None:
        message = b"".join(v for k, v in reply.attributes if k == EAP_MESSAGE)
        if len(message) >= 4:
            return eap_split(message)
    return eap_split(eap_failure(identifier))
