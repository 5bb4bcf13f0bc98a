"""RADIUS clients (gateways, VPNs, PAM hosts): who may ask, with which shared secret, and how
their users' first factor is checked. Configuration, so written through ``ChangeWriter``; the
shared secret is sealed under the key file (the server needs it back to sign answers).

MS-CHAPv2 and EAP (``mschap``, ``eap``, ``reply_attributes``; schema 0009): a client with
``--mschap yes``, ``--eap relay`` or ``--primary ntlm`` is added only once the data set is at
data format 8 (``formats.RADIUS_RELAY_FORMAT``). A release that does not know them (0.3.0)
applies a ``radius_client.add`` record by its named fields and ignores the others, so in a farm
still being upgraded it would take that client's MS-CHAPv2 or EAP request (no User-Password) for
PAP with an empty password, relay it, get a Reject and count a wrong password toward the
person's lock on every attempt (and ``ntlm`` it does not know at all). A client without them is
written at any format, as before; the revision that adds the columns takes their values from the
records the node kept when it is upgraded.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import Conflict, InvalidInput, NotFound
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.formats import RADIUS_RELAY_FORMAT, require

PRIMARIES = ("none", "local", "ldap", "radius", "ntlm")
PUSH_MODES = ("challenge", "hold", "off")
EAP_MODES = ("off", "relay")
MIN_SECRET = 8
REPLY_ATTRIBUTES_DEFAULT = t.REPLY_ATTRIBUTES_DEFAULT
MSCHAP_PRIMARIES = ("radius", "ntlm")
"""Who can check an MS-CHAPv2 response (the password never travels): an upstream RADIUS
server that holds it, or Active Directory through Samba's ``ntlm_auth`` (``[ntlm]``)."""

REPLY_ATTRIBUTES = {
    "User-Name": 1,
    "Service-Type": 6,
    "Framed-Protocol": 7,
    "Framed-IP-Address": 8,
    "Framed-IP-Netmask": 9,
    "Framed-Routing": 10,
    "Filter-Id": 11,
    "Framed-MTU": 12,
    "Framed-Compression": 13,
    "Reply-Message": 18,
    "Callback-Number": 19,
    "Framed-Route": 22,
    "Class": 25,
    "Vendor-Specific": 26,
    "Session-Timeout": 27,
    "Idle-Timeout": 28,
    "Termination-Action": 29,
    "Egress-VLANID": 56,
    "Egress-VLAN-Name": 58,
    "Port-Limit": 62,
    "Tunnel-Type": 64,
    "Tunnel-Medium-Type": 65,
    "Tunnel-Private-Group-Id": 81,
    "Tunnel-Assignment-Id": 82,
    "Tunnel-Preference": 83,
    "Acct-Interim-Interval": 85,
    "Framed-Pool": 88,
    "NAS-Filter-Rule": 92,
    "Framed-Interface-Id": 96,
    "Framed-IPv6-Prefix": 97,
    "Framed-IPv6-Route": 99,
    "Framed-IPv6-Pool": 100,
    "Delegated-IPv6-Prefix": 123,
    "Framed-IPv6-Address": 168,
}
"""Attributes an allow-list may name (any other by its number, 1-255; a vendor's attributes as
``Vendor-Specific:VENDOR-ID``)."""
NEVER_PASSED = {
    2: "User-Password",
    3: "CHAP-Password",
    24: "State",
    33: "Proxy-State",
    60: "CHAP-Challenge",
    69: "Tunnel-Password",
    79: "EAP-Message",
    80: "Message-Authenticator",
}
"""Attributes the relay flows handle themselves (or that are sealed with the upstream's secret),
never passed by an allow-list."""


@dataclass(frozen=True, slots=True)
class RadiusClient:
    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    secret: bytes
    primary: str
    require_ma: bool
    combined: bool
    push: str = "challenge"
    """``challenge``, ``hold`` or ``off`` (see ``radius.flows``)."""
    hold_seconds: float = 25.0
    mschap: bool = False
    """Accept MS-CHAPv2 (no EAP), relayed to the upstream RADIUS server (``radius.relay``)."""
    eap: str = "off"
    """``relay``: EAP conversations are relayed to the upstream RADIUS server."""
    reply_attributes: tuple[str, ...] = tuple(REPLY_ATTRIBUTES_DEFAULT.split(","))
    """What the upstream's Access-Accept may pass to this client (``reply_allow_list``)."""


def reply_allow_list(text: str) -> tuple[str, ...]:
    """A comma-separated allow-list in its canonical spelling (names as in ``REPLY_ATTRIBUTES``,
    other attributes by number, ``Vendor-Specific:N`` for one vendor); "" or "none": nothing
    passes. Raises ``InvalidInput`` saying which entry is wrong."""
    by_lower = {k.lower(): k for k in REPLY_ATTRIBUTES}
    by_number = {v: k for k, v in REPLY_ATTRIBUTES.items()}
    never = {v.lower(): k for k, v in NEVER_PASSED.items()}
    out: list[str] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry or entry.lower() == "none":
            continue
        name, _, vendor = entry.partition(":")
        if vendor:
            if name.lower() not in ("vendor-specific", "26") or not vendor.strip().isdigit():
                raise InvalidInput(
                    f"{entry!r}: one vendor's attributes are written Vendor-Specific:VENDOR-ID "
                    "(a number, like Vendor-Specific:9 for Cisco)"
                )
            canonical = f"Vendor-Specific:{int(vendor)}"
        elif name.isdigit():
            number = int(name)
            if not 1 <= number <= 255:
                raise InvalidInput(f"{entry!r}: an attribute number is 1 to 255")
            canonical = by_number.get(number, str(number))
        elif name.lower() in by_lower:
            canonical = by_lower[name.lower()]
        elif name.lower() in never:
            canonical = str(never[name.lower()])
        else:
            raise InvalidInput(
                f"{entry!r} is not an attribute this list knows; name one of "
                f"{', '.join(REPLY_ATTRIBUTES)}, or give its number"
            )
        number = REPLY_ATTRIBUTES.get(canonical.partition(":")[0]) or int(canonical)
        if number in NEVER_PASSED and not vendor:
            raise InvalidInput(
                f"{NEVER_PASSED[number]} cannot be in --reply-attributes: OpenMFA handles it "
                "itself (or it is sealed with the upstream's secret)"
            )
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


class RadiusClients:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)

    def add(
        self,
        name: str,
        address: str,
        secret: str,
        *,
        primary: str = "none",
        require_ma: bool = True,
        combined: bool = False,
        push: str = "challenge",
        hold_seconds: float = 25.0,
        mschap: bool = False,
        eap: str = "off",
        reply_attributes: str = REPLY_ATTRIBUTES_DEFAULT,
        client: str = "cli",
    ) -> None:
        name = name.strip()
        if not name or len(name) > 255:
            raise InvalidInput("a RADIUS client name must be 1 to 255 characters")
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise InvalidInput(
                f"{address!r} is not an IP address or CIDR block (like 192.0.2.10 or 10.0.0.0/24)"
            ) from None
        if len(secret) < MIN_SECRET:
            raise InvalidInput(
                f"the shared secret must be at least {MIN_SECRET} characters; use a long random one"
            )
        if primary not in PRIMARIES:
            raise InvalidInput(f"--primary must be one of {', '.join(PRIMARIES)}")
        if combined and primary in ("none", "ntlm"):
            raise InvalidInput(
                "password+code in one field needs a primary check (--primary local, ldap or radius)"
            )
        if push not in PUSH_MODES:
            raise InvalidInput(f"--push must be one of {', '.join(PUSH_MODES)}")
        if not 1 <= hold_seconds <= 55:
            raise InvalidInput(
                "--hold-seconds must be from 1 to 55, and below the client's own timeout"
            )
        allowed = ",".join(reply_allow_list(reply_attributes))
        _relay_options(primary, combined, push, mschap, eap)
        with self.store.read() as conn:
            if mschap or eap != "off" or primary == "ntlm":
                require(
                    conn,
                    RADIUS_RELAY_FORMAT,
                    "RADIUS clients with --mschap yes, --eap relay or --primary ntlm",
                )
            if conn.scalar(select(t.radius_clients.c.name).where(t.radius_clients.c.name == name)):
                raise Conflict(f"a RADIUS client named {name!r} exists already")
        payload = {
            "name": name,
            "address": str(network),
            "primary": primary,
            "require_ma": require_ma,
            "combined": combined,
            "push": push,
            "hold_seconds": hold_seconds,
            "mschap": mschap,
            "eap": eap,
            "reply_attributes": allowed,
            "at": time.time(),
            "secret_enc": self.store.box.seal(secret.encode(), f"radius:{name}").hex(),
        }
        self.writer.commit(
            [Change("radius_client.add", payload)],
            [
                AuditEvent(
                    "radius_client.add",
                    "ok",
                    client=client,
                    detail=f"{name} {network} primary={primary} push={push}"
                    f"{' mschap=yes' if mschap else ''}{f' eap={eap}' if eap != 'off' else ''}",
                )
            ],
        )

    def remove(self, name: str, *, client: str = "cli") -> None:
        with self.store.read() as conn:
            if not conn.scalar(
                select(t.radius_clients.c.name).where(t.radius_clients.c.name == name)
            ):
                raise NotFound(f"no RADIUS client named {name!r}")
        self.writer.commit(
            [Change("radius_client.remove", {"name": name})],
            [AuditEvent("radius_client.remove", "ok", client=client, detail=name)],
        )

    def all(self) -> list[RadiusClient]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.radius_clients).order_by(t.radius_clients.c.name)).all()
        return [
            RadiusClient(
                name=r.name,
                network=ipaddress.ip_network(r.address),
                secret=self.store.box.open(r.secret_enc, f"radius:{r.name}"),
                primary=r.primary_auth,
                require_ma=bool(r.require_message_authenticator),
                combined=bool(r.combined),
                push=r.push,
                hold_seconds=float(r.hold_seconds),
                mschap=bool(r.mschap),
                eap=r.eap,
                reply_attributes=tuple(a for a in r.reply_attributes.split(",") if a),
            )
            for r in rows
        ]


def _relay_options(primary: str, combined: bool, push: str, mschap: bool, eap: str) -> None:
    """MS-CHAPv2 and EAP need someone who can check them, and a push to hold for."""
    if eap not in EAP_MODES:
        raise InvalidInput(f"--eap must be one of {', '.join(EAP_MODES)}")
    if primary == "ntlm" and not mschap:
        raise InvalidInput(
            "--primary ntlm checks MS-CHAPv2 only (ntlm_auth is never given a password): add "
            "--mschap yes"
        )
    if not mschap and eap == "off":
        return
    what = "--mschap yes" if mschap else "--eap relay"
    if mschap and primary not in MSCHAP_PRIMARIES:
        raise InvalidInput(
            "--mschap yes needs --primary radius or ntlm: the password never travels with "
            "MS-CHAPv2, so only a server that holds it (the upstream RADIUS server: NPS, "
            "FreeRADIUS; or Active Directory through ntlm_auth) can check it; the node's own "
            "passwords and LDAP cannot"
        )
    if eap != "off" and primary != "radius":
        raise InvalidInput(
            "--eap relay needs --primary radius: the upstream RADIUS server ends the EAP "
            "conversation (it holds the TLS certificate and the passwords)"
        )
    if combined:
        raise InvalidInput(
            f"{what} and --combined do not go together: MS-CHAPv2 and EAP carry no code (the "
            "second factor is a push)"
        )
    if push == "off":
        raise InvalidInput(
            f"{what} needs a push (--push hold or challenge; these requests are always held "
            "until the phone answers): MS-CHAPv2 and EAP carry no code"
        )
