"""RADIUS clients (gateways, VPNs, PAM hosts): who may ask, with which shared secret, and how
their users' first factor is checked. Configuration, so written through ``ChangeWriter``; the
shared secret is sealed under the key file (the server needs it back to sign answers)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import Conflict, InvalidInput, NotFound
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store

PRIMARIES = ("none", "local", "ldap", "radius")
PUSH_MODES = ("challenge", "hold", "off")
MIN_SECRET = 8


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
        if combined and primary == "none":
            raise InvalidInput(
                "password+code in one field needs a primary check (--primary local, ldap or radius)"
            )
        if push not in PUSH_MODES:
            raise InvalidInput(f"--push must be one of {', '.join(PUSH_MODES)}")
        if not 1 <= hold_seconds <= 55:
            raise InvalidInput(
                "--hold-seconds must be from 1 to 55, and below the client's own timeout"
            )
        with self.store.read() as conn:
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
                    detail=f"{name} {network} primary={primary} push={push}",
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
            )
            for r in rows
        ]
