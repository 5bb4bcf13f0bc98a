"""Reading the people of one directory source (LDAP or Active Directory) with ``ldap3``.

What a run needs from the directory is ``Reading``: every immutable id the source has now (so
leavers are seen), and the details of the people read — everyone in a full run, only those
changed since the cursor in an incremental one (``modifyTimestamp`` on OpenLDAP and most
servers, ``uSNChanged`` on Active Directory). Nothing here writes; every failure is a
``DirectoryError`` that names the source and what to do, never a password.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import DirectoryError

GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "group")
MEMBER_ATTRIBUTES = ("member", "uniqueMember")
MAX_GROUPS = 10_000
"""Most nested groups one source may follow (a loop or a mistake stops, said clearly)."""

LDAP_GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
AD_GROUP_FILTER = "(objectClass=group)"

LDAP_FILTER = "(objectClass=inetOrgPerson)"
AD_FILTER = "(&(objectCategory=person)(objectClass=user))"

Progress = Callable[[str, int], None]
"""``progress(stage, count)``: how far a long read has got (for a display)."""


@dataclass(frozen=True)
class Person:
    external_id: str
    name: str
    display_name: str = ""
    email: str = ""
    phone: str = ""
    disabled: bool = False


@dataclass
class Reading:
    ids: set[str]
    """Every id the source has now (inside its base DNs / group and filter)."""
    people: dict[str, Person]
    """The people read in full: all of them, or (incremental) those changed since the cursor."""
    mode: str  # "full" | "incremental"
    cursor: str
    """Where the next incremental run starts ("" when the server offers no way)."""
    skipped: list[str] = field(default_factory=list)
    """Entries left out (no id or no name), by DN."""
    groups: dict[str, set[str]] | None = None
    """The groups each person of ``ids`` is in, nested groups resolved (a person in none is
    absent); None when the source does not synchronise groups."""


@dataclass(frozen=True)
class Source:
    """One ``[[directory.sources]]`` table, with the defaults of its kind filled in."""

    name: str
    kind: str
    url: str
    start_tls: bool
    ca_file: str
    bind_dn: str
    base_dns: tuple[str, ...]
    group: str
    user_filter: str
    id_attribute: str
    name_attribute: str
    display_name_attribute: str
    mail_attribute: str
    phone_attributes: tuple[str, ...]
    disabled_filter: str
    on_leave: str
    incremental: bool
    page_size: int
    timeout_seconds: float
    groups: bool = False
    group_base_dns: tuple[str, ...] = ()
    group_filter: str = ""
    group_name_attribute: str = ""

    @classmethod
    def of(cls, table: dict[str, Any]) -> Source:
        ad = table["kind"] == "ad"
        return cls(
            name=table["name"],
            kind=table["kind"],
            url=table["url"],
            start_tls=table["start_tls"],
            ca_file=table["ca_file"],
            bind_dn=table["bind_dn"],
            base_dns=tuple(table["base_dns"]),
            group=table["group"],
            user_filter=table["user_filter"]
            or (
                "(&(objectCategory=person)(objectClass=user))"
                if ad
                else "(objectClass=inetOrgPerson)"
            ),
            id_attribute=table["id_attribute"] or ("objectGUID" if ad else "entryUUID"),
            name_attribute=table["name_attribute"] or ("sAMAccountName" if ad else "uid"),
            display_name_attribute=table["display_name_attribute"] or "displayName",
            mail_attribute=table["mail_attribute"],
            phone_attributes=tuple(table["phone_attributes"]),
            disabled_filter=table["disabled_filter"],
            on_leave=table["on_leave"],
            incremental=table["incremental"],
            page_size=table["page_size"],
            timeout_seconds=float(table["timeout_seconds"]),
            groups=bool(table.get("groups", False)),
            group_base_dns=tuple(table.get("group_base_dns") or table["base_dns"]),
            group_filter=table.get("group_filter")
            or (AD_GROUP_FILTER if ad else LDAP_GROUP_FILTER),
            group_name_attribute=table.get("group_name_attribute") or "cn",
        )

    @property
    def change_attribute(self) -> str:
        return "uSNChanged" if self.kind == "ad" else "modifyTimestamp"

    def attributes(self) -> list[str]:
        wanted = [
            self.id_attribute,
            self.name_attribute,
            self.display_name_attribute,
            self.mail_attribute,
            *self.phone_attributes,
            self.change_attribute,
        ]
        if self.kind == "ad":
            wanted.append("userAccountControl")
        return [a for a in dict.fromkeys(wanted) if a]


def read(
    source: Source,
    password: str,
    *,
    cursor: str = "",
    full: bool = False,
    progress: Progress | None = None,
) -> Reading:
    """Read ``source``: incremental when it may be (a cursor, no group, not ``full``)."""
    from ldap3.core.exceptions import LDAPException

    try:
        with connect(source, password) as conn:
            return _Reader(source, conn, progress or (lambda stage, n: None)).run(cursor, full)
    except DirectoryError:
        raise
    except LDAPException as exc:
        raise DirectoryError(
            f"directory source {source.name!r} ({source.url}): {_describe(exc)}"
        ) from None
    except OSError as exc:
        raise DirectoryError(
            f"directory source {source.name!r} ({source.url}): {exc.strerror or exc}"
        ) from None
    except Exception as exc:  # ldap3 lets a few of its own errors out raw
        raise DirectoryError(
            f"directory source {source.name!r} ({source.url}): {type(exc).__name__}: {exc}"
        ) from None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    name = type(exc).__name__
    if name == "LDAPInvalidFilterError":
        return (
            f"a filter is not valid LDAP filter syntax ({text}); fix user_filter or disabled_filter"
        )
    if name == "LDAPNoSuchObjectResult":
        return "a base DN or the group does not exist; check base_dns and group"
    if name in (
        "LDAPSocketOpenError",
        "LDAPSocketReceiveError",
        "LDAPSessionTerminatedByServerError",
    ):
        return f"cannot reach the server ({text}); check url, the network and the certificate"
    if name == "LDAPStartTLSError":
        return f"StartTLS failed ({text}); check the server's certificate and ca_file"
    return text


class _Connection:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # closing one that failed: nothing to report
            self.conn.unbind()


def connect(source: Source, password: str, *, writable: bool = False) -> _Connection:
    """Bound to ``source`` as its ``bind_dn`` with ``password`` (read-only unless
    ``writable``: a person changing their own password, ``directory.password``)."""
    import ldap3

    secure = source.url.startswith("ldaps://") or source.start_tls
    tls = None
    if secure:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=source.ca_file or None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
    server = ldap3.Server(
        source.url,
        use_ssl=source.url.startswith("ldaps://"),
        tls=tls,
        connect_timeout=math.ceil(source.timeout_seconds),
        get_info=ldap3.NONE,
    )
    conn = ldap3.Connection(
        server,
        user=source.bind_dn or None,
        password=password or None,
        receive_timeout=math.ceil(source.timeout_seconds),
        read_only=not writable,
        raise_exceptions=False,
        auto_referrals=False,
    )
    conn.open()
    if source.start_tls and not conn.start_tls():
        conn.unbind()
        raise DirectoryError(
            f"directory source {source.name!r}: StartTLS was refused ({conn.result['description']})"
        )
    if not conn.bind():
        conn.unbind()  # its socket, closed (a wrong password is not a reason to leak one)
        what = f"as {source.bind_dn!r}" if source.bind_dn else "anonymously"
        raise DirectoryError(
            f"directory source {source.name!r}: the server refused to bind {what} "
            f"({conn.result['description']}); check bind_dn and set the password again with "
            f"`openmfa directory set-password {source.name}`"
        )
    conn.raise_exceptions = True
    return _Connection(conn)


class _Reader:
    def __init__(self, source: Source, conn: Any, progress: Progress) -> None:
        self.s, self.conn, self.progress = source, conn, progress
        self.dns: dict[str, str] = {}
        """Every person's DN seen (normalised, ``_dn``) -> their id: whom a group's member
        values name."""

    def run(self, cursor: str, full: bool) -> Reading:
        reading = self._read(cursor, full)
        if self.s.groups:
            reading.groups = self._memberships(reading.ids)
        return reading

    def _read(self, cursor: str, full: bool) -> Reading:
        s = self.s
        if s.group:
            people, skipped = self._group_members()
            ids = set(people)
            disabled = (
                self._ids(f"(&{s.user_filter}{s.disabled_filter})") if s.disabled_filter else set()
            )
            return Reading(ids, self._mark(people, disabled), "full", "", skipped)
        incremental = s.incremental and bool(cursor) and not full
        disabled = (
            self._ids(f"(&{s.user_filter}{s.disabled_filter})") if s.disabled_filter else set()
        )
        if incremental:
            ids = self._ids(s.user_filter)
            changed = f"(&{s.user_filter}({s.change_attribute}>={cursor}))"
            people, skipped, newest = self._people(changed)
            mode = "incremental"
        else:
            people, skipped, newest = self._people(s.user_filter)
            ids = set(people)
            mode = "full"
        next_cursor = max(newest, cursor, key=_order) if s.incremental else ""
        return Reading(ids, self._mark(people, disabled), mode, next_cursor, skipped)

    def _disabled(self) -> set[str]:
        s = self.s
        return self._ids(f"(&{s.user_filter}{s.disabled_filter})") if s.disabled_filter else set()

    @staticmethod
    def _mark(people: dict[str, Person], disabled: set[str]) -> dict[str, Person]:
        if not disabled:
            return people
        return {
            k: (dataclasses.replace(p, disabled=True) if k in disabled else p)
            for k, p in people.items()
        }

    def _search(
        self, base: str, flt: str, attributes: list[str], scope: str = "SUBTREE"
    ) -> Iterator[dict[str, Any]]:
        import ldap3

        if scope == "BASE":
            self.conn.search(base, flt, search_scope=ldap3.BASE, attributes=attributes)
            yield from (e for e in self.conn.response if e.get("type") == "searchResEntry")
            return
        yield from (
            e
            for e in self.conn.extend.standard.paged_search(
                base,
                flt,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=self.s.page_size,
                generator=True,
            )
            if e.get("type") == "searchResEntry"
        )

    def _ids(self, flt: str) -> set[str]:
        out: set[str] = set()
        for base in self.s.base_dns:
            for entry in self._search(base, flt, [self.s.id_attribute]):
                ext = self._id(entry)
                if ext:
                    out.add(ext)
                    self.dns[_dn(entry["dn"])] = ext
                    if len(out) % 5000 == 0:
                        self.progress("ids", len(out))
        return out

    def _people(self, flt: str) -> tuple[dict[str, Person], list[str], str]:
        people: dict[str, Person] = {}
        skipped: list[str] = []
        newest = ""
        attributes = self.s.attributes()
        for base in self.s.base_dns:
            for entry in self._search(base, flt, attributes):
                person = self._person(entry)
                if person is None:
                    skipped.append(entry["dn"])
                    continue
                people[person.external_id] = person
                self.dns[_dn(entry["dn"])] = person.external_id
                newest = max(newest, self._first(entry, self.s.change_attribute), key=_order)
                if len(people) % 5000 == 0:
                    self.progress("entries", len(people))
        return people, skipped, newest

    def _group_members(self) -> tuple[dict[str, Person], list[str]]:
        """The people of ``group``, nested groups followed (each group once)."""
        s = self.s
        classes = "".join(f"(objectClass={c})" for c in GROUP_CLASSES)
        flt = f"(|{classes}{s.user_filter})"
        attributes = [*s.attributes(), "objectClass", *MEMBER_ATTRIBUTES]
        todo, seen_groups, seen = [s.group], 0, {s.group.lower()}
        people: dict[str, Person] = {}
        skipped: list[str] = []
        while todo:
            dn = todo.pop()
            for entry in self._search(dn, flt, attributes, scope="BASE"):
                kinds = {str(c) for c in entry["attributes"].get("objectClass", [])}
                if kinds & set(GROUP_CLASSES):
                    seen_groups += 1
                    if seen_groups > MAX_GROUPS:
                        raise DirectoryError(
                            f"directory source {s.name!r}: more than {MAX_GROUPS} nested groups "
                            f"below {s.group!r}"
                        )
                    for attr in MEMBER_ATTRIBUTES:
                        for member in entry["attributes"].get(attr, []) or []:
                            key = str(member).lower()
                            if key not in seen:
                                seen.add(key)
                                todo.append(str(member))
                    continue
                person = self._person(entry)
                if person is None:
                    skipped.append(entry["dn"])
                else:
                    people[person.external_id] = person
                    self.dns[_dn(entry["dn"])] = person.external_id
                    if len(people) % 1000 == 0:
                        self.progress("members", len(people))
        return people, skipped

    def _memberships(self, ids: set[str]) -> dict[str, set[str]]:
        """The groups (by ``group_name_attribute``) each person of ``ids`` is in: the groups
        below ``group_base_dns`` that match ``group_filter``, read once, and nested groups
        resolved here from their ``member``/``uniqueMember`` values (a group in a group makes
        its members members of both; loops end). Works alike on OpenLDAP and Active Directory,
        where it gives what LDAP_MATCHING_RULE_IN_CHAIN would for the groups read, with one
        paged search instead of a query per person or group."""
        s = self.s
        names: dict[str, str] = {}  # group DN -> its name
        parents: dict[str, set[str]] = {}  # a member's DN -> the DNs of groups holding it
        attributes = [s.group_name_attribute, *MEMBER_ATTRIBUTES]
        for base in s.group_base_dns:
            for entry in self._search(base, s.group_filter, attributes):
                dn = _dn(entry["dn"])
                if dn in names:
                    continue
                names[dn] = self._first(entry, s.group_name_attribute)
                if len(names) > MAX_GROUPS:
                    raise DirectoryError(
                        f"directory source {s.name!r}: more than {MAX_GROUPS} groups below "
                        f"{', '.join(s.group_base_dns)}; narrow group_base_dns or group_filter"
                    )
                for attr in MEMBER_ATTRIBUTES:
                    for member in entry["attributes"].get(attr, []) or []:
                        parents.setdefault(_dn(str(member)), set()).add(dn)
        self.progress("groups", len(names))
        above: dict[str, frozenset[str]] = {}  # a group's DN -> it and every group above it

        def closure(dn: str) -> frozenset[str]:
            if dn not in above:
                seen, todo = {dn}, [dn]
                while todo:
                    for parent in parents.get(todo.pop(), ()):
                        if parent not in seen:
                            seen.add(parent)
                            todo.append(parent)
                above[dn] = frozenset(seen)
            return above[dn]

        out: dict[str, set[str]] = {}
        for dn, ext in self.dns.items():
            if ext not in ids:
                continue
            for group in parents.get(dn, ()):
                found = {names[g] for g in closure(group) if names[g]}
                if found:
                    out.setdefault(ext, set()).update(found)
        return out

    def _person(self, entry: dict[str, Any]) -> Person | None:
        s = self.s
        ext = self._id(entry)
        name = self._first(entry, s.name_attribute)
        if not ext or not name:
            return None
        phone = next((p for a in s.phone_attributes if (p := self._first(entry, a))), "")
        disabled = False
        if s.kind == "ad":
            uac = self._first(entry, "userAccountControl")
            disabled = uac.isdigit() and bool(int(uac) & 2)  # ACCOUNTDISABLE
        return Person(
            external_id=ext,
            name=name,
            display_name=self._first(entry, s.display_name_attribute),
            email=self._first(entry, s.mail_attribute),
            phone=phone,
            disabled=disabled,
        )

    def _id(self, entry: dict[str, Any]) -> str:
        attr = self.s.id_attribute
        if attr.lower() == "objectguid":
            raw = entry.get("raw_attributes", {}).get(attr) or []
            if raw and len(raw[0]) == 16:
                return str(uuid.UUID(bytes_le=bytes(raw[0])))
        return self._first(entry, attr)

    @staticmethod
    def _first(entry: dict[str, Any], attr: str) -> str:
        if not attr:
            return ""
        value = entry["attributes"].get(attr)
        if isinstance(value, list):
            value = value[0] if value else ""
        if value is None:
            return ""
        if hasattr(value, "strftime"):  # ldap3 decodes generalized time
            return str(value.strftime("%Y%m%d%H%M%SZ"))
        return str(value).strip()


def _dn(dn: str) -> str:
    """A DN as the member values of groups and the DNs of entries are compared: lower case,
    no spaces around its RDNs."""
    return ",".join(part.strip() for part in dn.lower().split(","))


def _order(value: str) -> tuple[int, str]:
    """Cursor values compare as numbers (uSNChanged) or as times (modifyTimestamp)."""
    return (int(value), "") if value.isdigit() else (0, value)
