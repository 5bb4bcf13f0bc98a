"""First-factor checks for RADIUS clients: the node's own passwords, an LDAP directory, or an
upstream RADIUS server. Each is ``async check(user, password) -> bool``; a backend that cannot
be reached raises ``PrimaryUnavailable`` (the request is rejected and the reason logged)."""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, Protocol

from ..config import Config, parse_listen
from ..errors import OpenMfaError, PrimaryUnavailable
from ..node.passwords import check_password
from ..store.database import Store
from . import packet as p


class PrimaryCheck(Protocol):
    async def check(self, user: str, password: str) -> bool: ...


class LocalPasswords:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self, user: str, password: str) -> bool:
        return await asyncio.to_thread(check_password, self.store, user, password)


class LdapBind:
    """Simple bind as the user: directly by DN template, or after a search by a service account;
    or in the directory source ``[ldap] source`` names (``directory.bind``)."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.c = config.values["ldap"]
        self.config, self.store = config, store

    async def check(self, user: str, password: str) -> bool:
        if self.c["source"]:
            return await asyncio.to_thread(self._check_source, user, password)
        if not self.c["url"]:
            raise PrimaryUnavailable("[ldap] url is not set")
        if not password:
            return False  # an empty password would be an anonymous bind: never a success
        return await asyncio.to_thread(self._check, user, password)

    def _check_source(self, user: str, password: str) -> bool:
        from ..directory.bind import check_password
        from ..directory.sync import DirectorySync

        if self.store is None:
            raise PrimaryUnavailable("[ldap] source needs the node's data (its sealed password)")
        sync = DirectorySync(self.store, self.config)
        try:
            (source,) = sync.sources(self.c["source"])
        except OpenMfaError as exc:
            raise PrimaryUnavailable(f"[ldap] source: {exc.message}") from None
        return check_password(source, sync.password(source.name), user, password)

    def _check(self, user: str, password: str) -> bool:
        import ldap3
        from ldap3.core.exceptions import LDAPBindError, LDAPException
        from ldap3.utils.conv import escape_filter_chars
        from ldap3.utils.dn import escape_rdn

        timeout = self.c["timeout_seconds"]
        server = ldap3.Server(self.c["url"], connect_timeout=timeout, get_info=ldap3.NONE)
        try:
            if self.c["bind_dn_template"]:
                dn = self.c["bind_dn_template"].replace("{user}", escape_rdn(user))
            else:
                with ldap3.Connection(
                    server,
                    self.c["service_dn"] or None,
                    self.c["service_password"] or None,
                    auto_bind=True,
                    receive_timeout=timeout,
                ) as svc:
                    flt = self.c["search_filter"].replace("{user}", escape_filter_chars(user))
                    svc.search(self.c["search_base"], flt, attributes=[], size_limit=2)
                    if len(svc.entries) != 1:
                        return False
                    dn = svc.entries[0].entry_dn
            conn = ldap3.Connection(server, dn, password, receive_timeout=timeout)
            try:
                return bool(conn.bind())
            finally:
                conn.unbind()
        except LDAPBindError:
            return False
        except LDAPException as exc:
            raise PrimaryUnavailable(f"LDAP at {self.c['url']}: {exc}") from None


class UpstreamRadius:
    """Proxy the password to another RADIUS server (PAP), wait for its Accept or Reject."""

    def __init__(self, config: Config) -> None:
        self.c = config.values["radius_upstream"]

    async def check(self, user: str, password: str) -> bool:
        auth = os.urandom(16)
        secret = self.c["secret"].encode()
        attrs = [
            (p.USER_NAME, user.encode()),
            (p.USER_PASSWORD, p.hide_password(password.encode(), secret, auth)),
            (p.NAS_IDENTIFIER, b"openmfa"),
        ]
        reply = await exchange(self.c, attrs, auth)
        return reply.code == p.ACCESS_ACCEPT


async def exchange(
    upstream: dict[str, Any], attributes: list[tuple[int, bytes]], authenticator: bytes
) -> p.Packet:
    """One Access-Request to ``[radius_upstream]`` (``upstream``: that table), with a
    Message-Authenticator, sent again as it was (the same Identifier and Authenticator, so the
    server sees a retransmission) when the first gets no answer within ``timeout_seconds``;
    the answer, checked against the shared secret. ``PrimaryUnavailable`` when it is not set,
    stays silent or answers wrongly signed."""
    if not upstream["address"]:
        raise PrimaryUnavailable("[radius_upstream] address is not set")
    host, port = parse_listen(upstream["address"])
    secret = upstream["secret"].encode()
    ident = os.urandom(1)[0]
    request = p.encode_request(p.ACCESS_REQUEST, ident, attributes, secret, authenticator)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_Answer, answer, ident), remote_addr=(host, port)
        )
    except OSError as exc:
        raise PrimaryUnavailable(f"upstream RADIUS {host}:{port}: {exc.strerror}") from None
    try:
        for _attempt in range(2):
            transport.sendto(request)
            try:
                raw = await asyncio.wait_for(asyncio.shield(answer), upstream["timeout_seconds"])
            except TimeoutError:
                continue
            try:
                return p.verify_response(raw, authenticator, secret)
            except p.MalformedPacket as exc:
                raise PrimaryUnavailable(f"upstream RADIUS {host}:{port}: {exc}") from None
    finally:
        transport.close()
    raise PrimaryUnavailable(f"upstream RADIUS {host}:{port} did not answer")


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[bytes], ident: int) -> None:
        self.answer, self.ident = answer, ident

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done() and len(data) > 1 and data[1] == self.ident:
            self.answer.set_result(data)
