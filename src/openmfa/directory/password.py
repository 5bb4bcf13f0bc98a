"""A person changes their password in the directory their first factor asks (``[ldap]``:
its own settings, or the ``[[directory.sources]]`` source ``[ldap] source`` names), as
themselves, with their current password — never with the service account's rights:

- OpenLDAP and other directories that offer it: the LDAP Password Modify extended operation
  (RFC 3062), with the old password (the server hashes the new one by its own rules);
- Active Directory (a source of kind ``ad``, or a server without RFC 3062): ``unicodePwd``
  deleted (the old, quoted, UTF-16LE) and added (the new) in one modify, which AD accepts only
  over LDAPS or StartTLS — a change is not even tried without TLS.

What the directory says when it refuses (too short for its policy, too young, in its history)
is handed back in its own words, a line of printable text at most 200 characters long; a
directory that cannot be reached, or an entry that cannot be found, is ``PrimaryUnavailable``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
from typing import Any

from ..config import Config
from ..errors import DirectoryError, OpenMfaError, PrimaryUnavailable
from ..store.database import Store
from .bind import find_people

PASSWORD_MODIFY = "1.3.6.1.4.1.4203.1.11.1"  # noqa: S105 (an OID)
"""RFC 3062's extended operation, as a server lists it in ``supportedExtension``."""
_HEX_CODE = re.compile(r"^[0-9A-Fa-f]{8}: ")


class DirectoryPasswords:
    """``node.password_change.DirectoryPasswords`` for the ``[ldap]`` settings."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.c = config.values["ldap"]
        self.config, self.store = config, store

    async def change(self, user: str, current: str, new: str) -> str | None:
        return await asyncio.to_thread(self._change, user, current, new)

    def _change(self, user: str, current: str, new: str) -> str | None:
        from ldap3.core.exceptions import LDAPException

        try:
            if self.c["source"]:
                return self._in_source(user, current, new)
            if not self.c["url"]:
                raise PrimaryUnavailable("[ldap] url is not set")
            return self._direct(user, current, new)
        except (DirectoryError, LDAPException, OSError) as exc:
            text: Any = exc.message if isinstance(exc, DirectoryError) else exc
            raise PrimaryUnavailable(f"changing {user!r}'s password: {text}") from None

    def _in_source(self, user: str, current: str, new: str) -> str | None:
        from .reader import connect
        from .sync import DirectorySync

        if self.store is None:
            raise PrimaryUnavailable("[ldap] source needs the node's data (its sealed password)")
        sync = DirectorySync(self.store, self.config)
        try:
            (source,) = sync.sources(self.c["source"])
        except OpenMfaError as exc:
            raise PrimaryUnavailable(f"[ldap] source: {exc.message}") from None
        found = find_people(source, sync.password(source.name), user)
        if len(found) != 1:
            raise PrimaryUnavailable(f"{len(found)} entries are named {user!r} in the directory")
        person = dataclasses.replace(source, bind_dn=found[0])
        with connect(person, current, writable=True) as conn:
            ad = source.kind == "ad"
            return _modify(conn, found[0], current, new, ad=ad)

    def _direct(self, user: str, current: str, new: str) -> str | None:
        import ldap3
        from ldap3.utils.conv import escape_filter_chars
        from ldap3.utils.dn import escape_rdn

        c, timeout = self.c, self.c["timeout_seconds"]
        url = str(c["url"])
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED) if url.startswith("ldaps://") else None
        server = ldap3.Server(url, connect_timeout=timeout, get_info=ldap3.DSA, tls=tls)
        if c["bind_dn_template"]:
            dn = str(c["bind_dn_template"]).replace("{user}", escape_rdn(user))
        else:
            # (Not ``with``: ldap3's context gives back the state it found, bound and open.)
            svc = ldap3.Connection(
                server,
                c["service_dn"] or None,
                c["service_password"] or None,
                receive_timeout=timeout,
                raise_exceptions=True,
            )
            try:
                svc.bind()
                flt = str(c["search_filter"]).replace("{user}", escape_filter_chars(user))
                svc.search(c["search_base"], flt, attributes=[], size_limit=2)
                if len(svc.entries) != 1:
                    raise PrimaryUnavailable(
                        f"{len(svc.entries)} entries are named {user!r} in the directory"
                    )
                dn = svc.entries[0].entry_dn
            finally:
                _close(svc)
        conn = ldap3.Connection(server, dn, current, receive_timeout=timeout, raise_exceptions=True)
        try:
            conn.bind()
            info = server.info
            offered = [e[0] for e in (info.supported_extensions or [])] if info else []
            return _modify(conn, dn, current, new, ad=PASSWORD_MODIFY not in offered)
        finally:
            _close(conn)


def _close(conn: Any) -> None:
    """Unbound, and its socket closed (ldap3 leaves the socket of a failed connect open)."""
    conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()


def _modify(conn: Any, dn: str, current: str, new: str, *, ad: bool) -> str | None:
    """The change, on ``conn`` bound as the person ``dn``: None when done, else the
    directory's reason for refusing."""
    from ldap3.core.exceptions import LDAPOperationResult

    if ad and not (conn.server.ssl or conn.tls_started):
        raise PrimaryUnavailable(
            "Active Directory changes a password only over LDAPS or StartTLS: use an ldaps:// "
            "url (or start_tls) for the directory"
        )
    try:
        if ad:
            done = conn.extend.microsoft.modify_password(dn, new, current)
        else:
            done = conn.extend.standard.modify_password(dn, current, new)
    except LDAPOperationResult as exc:
        return said(str(exc.description or ""), str(exc.message or ""))
    if done:
        return None
    result = conn.result or {}
    return said(str(result.get("description", "")), str(result.get("message", "")))


def said(description: str, message: str) -> str:
    """What the directory said, safe to show the person: one line of printable characters
    (AD's leading error number dropped), at most 200, else the result's name."""
    text = _HEX_CODE.sub("", message.strip())
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())[:200]
    return text or description or "refused"
