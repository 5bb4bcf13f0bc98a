"""A directory source as the first factor: the person's password checked by binding as them.

Used by RADIUS clients with ``--primary ldap`` and the portal's ``primary = "ldap"`` when
``[ldap] source`` names a ``[[directory.sources]]`` table: the same server, TLS settings, service
account (its sealed password), base DNs and user filter the synchronisation uses, so the people
who can sign in are exactly the people it brought.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import DirectoryError, PrimaryUnavailable
from .reader import Source, connect


def check_password(source: Source, service_password: str, user: str, password: str) -> bool:
    """True when ``user`` (by the source's name attribute, inside its filter) binds with
    ``password``; ``PrimaryUnavailable`` when the directory cannot answer."""
    from ldap3.core.exceptions import LDAPException

    if not password:
        return False  # an empty password would be an anonymous bind: never a success
    try:
        found = find_people(source, service_password, user)
        if len(found) != 1:
            return False
        person = dataclasses.replace(source, bind_dn=found[0])
        try:
            with connect(person, password):
                return True
        except DirectoryError as exc:
            if "refused to bind" in exc.message:
                return False
            raise
    except (DirectoryError, LDAPException, OSError) as exc:
        text: Any = exc.message if isinstance(exc, DirectoryError) else exc
        raise PrimaryUnavailable(f"directory source {source.name!r}: {text}") from None


def find_people(source: Source, service_password: str, user: str) -> list[str]:
    """The DNs of the entries named ``user`` (by the source's name attribute, inside its
    filter), found by its service account; at most two (one is a person, two an ambiguity)."""
    from ldap3.utils.conv import escape_filter_chars

    flt = f"(&{source.user_filter}({source.name_attribute}={escape_filter_chars(user)}))"
    found: list[str] = []
    with connect(source, service_password) as svc:
        for base in source.base_dns or (_domain_of(source.group),):
            svc.search(base, flt, attributes=[], size_limit=2)
            found += [e["dn"] for e in svc.response if e.get("type") == "searchResEntry"]
    return found


def _domain_of(dn: str) -> str:
    """The DC= part of a DN (where a group-only source's people are searched)."""
    parts = [p for p in dn.split(",") if p.strip().lower().startswith("dc=")]
    return ",".join(parts) or dn
