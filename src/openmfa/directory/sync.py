"""Directory synchronisation: compare what a source has with the users it brought, and change
the difference — through ``ChangeWriter``, so a farm replicates it like any write.

Invariants owned here:
- a user synchronised from a source is found by the source's immutable id (``users.source``,
  ``users.external_id``), never by name, so a rename or a move between OUs is the same person
  with every method kept;
- a run that would disable or remove more people than ``[directory] max_changes`` stops before
  it changes anything, until it is approved;
- a source that cannot be read (unreachable, refused bind, bad filter or base) changes nothing;
- the directory decides whether a person it brought is enabled;
- where a source synchronises groups (``groups = true``), the directory decides the person's
  groups of origin ``directory`` — never those set by hand — and a person who left it is in
  none of them; written only once the data set is at format 11 (before, the run says so and
  synchronises the people alone).
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..config import Config
from ..errors import DirectoryError, InvalidInput, NotFound
from ..node.accounts import check_name
from ..node.groups import DIRECTORY, check_group_name, groups_change
from ..node.session_ends import end_change, ends_known
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter, check_writable
from ..store.database import Store
from .reader import Person, Progress, Reading, Source, read

BATCH = 1000
"""Changes per commit: a big first run is many short transactions, each safe to repeat."""


@dataclass
class Plan:
    source: str
    mode: str = "full"
    add: list[Person] = field(default_factory=list)
    link: list[tuple[str, Person]] = field(default_factory=list)
    """Users that existed here already (same name, from no source): now this source's."""
    update: list[tuple[str, Person, dict[str, Any]]] = field(default_factory=list)
    """(user name now, the person, the fields that change)."""
    disable: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    remove: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    groups: dict[str, tuple[str, list[str], list[str]]] = field(default_factory=dict)
    """external id -> (user name, groups added, groups removed): origin ``directory``."""
    notes: list[str] = field(default_factory=list)
    """What the run did not do and why (groups before data format 11)."""

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.add),
            "linked": len(self.link),
            "updated": len(self.update),
            "disabled": len(self.disable),
            "removed": len(self.remove),
            "conflicts": len(self.conflicts),
            "skipped": len(self.skipped),
            "groups": len(self.groups),
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """(action, user, detail) for a table."""
        out = [("add", p.name, p.display_name) for p in self.add]
        out += [("link", name, "existing user, now from the directory") for name, _ in self.link]
        for name, person, fields in self.update:
            detail = ", ".join(
                f"name -> {person.name}" if k == "name" else k for k in sorted(fields)
            )
            out.append(("update", name, detail))
        out += [("disable", name, why) for name, why in self.disable]
        out += [("remove", name, "left the directory") for name in self.remove]
        out += [("conflict", "", c) for c in self.conflicts]
        out += [("skip", "", s) for s in self.skipped]
        for name, added, removed in sorted(self.groups.values()):
            detail = " ".join([*(f"+{g}" for g in added), *(f"-{g}" for g in removed)])
            out.append(("groups", name, detail))
        out += [("note", "", n) for n in self.notes]
        return out


@dataclass
class RunResult:
    source: str
    mode: str
    plan: Plan
    applied: bool
    seconds: float
    error: str = ""
    stopped: bool = False


@dataclass
class SourceStatus:
    name: str
    url: str
    kind: str
    state: dict[str, Any]


class _Current:
    """The users this source brought, as they are here now: every id (cheap), and the details
    of only those a run looks at (an incremental run of a big directory looks at few)."""

    CHUNK = 500

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.box = store, store.box
        query = select(
            t.users.c.external_id, t.users.c.id, t.users.c.name, t.users.c.enabled
        ).where(t.users.c.source == source)
        g = t.user_groups
        groups = (
            select(t.users.c.external_id, g.c.name)
            .join(g, g.c.user_id == t.users.c.id)
            .where(t.users.c.source == source, g.c.origin == DIRECTORY)
        )
        with store.read() as conn:
            self.ids: dict[str, Any] = {r.external_id: r for r in conn.execute(query)}
            self.groups: dict[str, set[str]] = {}
            """external id -> the person's groups of origin ``directory`` here now."""
            for r in conn.execute(groups):
                self.groups.setdefault(r.external_id, set()).add(r.name)

    def rows(self, external_ids: set[str]) -> dict[str, Any]:
        wanted = sorted(e for e in external_ids if e in self.ids)
        cols = (t.users.c.id, t.users.c.display_name, t.users.c.email, t.users.c.phone)
        out: dict[str, Any] = {}
        with self.store.read() as conn:
            for i in range(0, len(wanted), self.CHUNK):
                ids = [self.ids[e].id for e in wanted[i : i + self.CHUNK]]
                query = select(*cols, t.users.c.contact_enc).where(t.users.c.id.in_(ids))
                by_row = {r.id: r for r in conn.execute(query)}
                for e in wanted[i : i + self.CHUNK]:
                    out[e] = by_row[self.ids[e].id]
        return out

    def holders(self, names: set[str]) -> dict[str, tuple[str | None, str | None]]:
        """Who holds each of ``names`` here: (source, external id); (None, None) for a user
        of no source."""
        wanted = sorted(names)
        out: dict[str, tuple[str | None, str | None]] = {}
        with self.store.read() as conn:
            for i in range(0, len(wanted), self.CHUNK):
                query = select(t.users.c.name, t.users.c.source, t.users.c.external_id).where(
                    t.users.c.name.in_(wanted[i : i + self.CHUNK])
                )
                out |= {r.name: (r.source, r.external_id) for r in conn.execute(query)}
        return out

    def contact(self, row: Any) -> tuple[str, str]:
        if row.contact_enc is not None:
            return formats.open_contact(self.box, row.id, row.contact_enc)
        return row.email, row.phone


def _text(value: str, limit: int = 255) -> str:
    """A directory value as a user field: printable, trimmed, within the SDK's limits."""
    clean = "".join(c for c in value if c.isprintable() and unicodedata.category(c) != "Cf")
    return clean.strip()[:limit]


def plan(source: Source, reading: Reading, current: _Current) -> Plan:
    out = Plan(source=source.name, mode=reading.mode, skipped=[
        f"{dn}: no {source.id_attribute} or no {source.name_attribute}" for dn in reading.skipped
    ])  # fmt: skip
    leaving = [ext for ext in current.ids if ext not in reading.ids]
    freed = {current.ids[ext].name for ext in leaving} if source.on_leave == "remove" else set()
    claimed: set[str] = set()
    moving = {  # names this source's people leave in this run (renames, swaps)
        current.ids[e].name
        for e, p in reading.people.items()
        if e in current.ids and p.name.strip() != current.ids[e].name
    }
    rows = current.rows(set(reading.people))
    holders = current.holders({p.name.strip() for p in reading.people.values()})
    for ext, person in sorted(reading.people.items(), key=lambda kv: kv[1].name):
        try:
            name = check_name(person.name)
        except InvalidInput as exc:
            out.skipped.append(f"{person.name!r}: {exc.message}")
            continue
        want = {
            "display_name": _text(person.display_name),
            "email": _text(person.email),
            "phone": _text(person.phone, 64),
            "enabled": not person.disabled,
        }
        row = rows.get(ext)
        holder = holders.get(name)
        taken = (
            holder is not None
            and holder != (source.name, ext)
            and name not in freed
            and not (holder[0] == source.name and name in moving)
        )
        if taken and holder is not None and holder[0] is None and row is None:
            if name in claimed:
                out.conflicts.append(f"{name!r}: two people of the directory have this name")
                continue
            claimed.add(name)
            out.link.append((name, Person(ext, name, **_person_fields(want))))
            continue
        if taken or name in claimed:
            out.conflicts.append(
                f"{name!r}: the name is another user's here"
                + (f" (from source {holder[0]!r})" if holder and holder[0] else "")
                + "; that person was not synchronised"
            )
            continue
        claimed.add(name)
        if row is None:
            out.add.append(Person(ext, name, **_person_fields(want)))
            continue
        email, phone = current.contact(row)
        have = {
            "display_name": row.display_name,
            "email": email,
            "phone": phone,
            "enabled": bool(current.ids[ext].enabled),
        }
        fields = {k: v for k, v in want.items() if have[k] != v}
        if name != current.ids[ext].name:
            fields["name"] = name
        now = current.ids[ext].name
        if fields.get("enabled") is False:
            out.disable.append((now, "disabled in the directory"))
            del fields["enabled"]
        if fields:
            out.update.append((now, Person(ext, name, **_person_fields(want)), fields))
    for ext in leaving:
        row = current.ids[ext]
        if source.on_leave == "remove":
            out.remove.append(row.name)
        elif row.enabled:
            out.disable.append((row.name, "left the directory or its filter"))
    if reading.groups is not None:
        _plan_groups(out, reading, current, removed=set(leaving) if out.remove else set())
    return out


def _plan_groups(out: Plan, reading: Reading, current: _Current, removed: set[str]) -> None:
    """The ``directory`` groups to add and remove per person: what the directory says for
    everyone it has (a group whose name breaks the rule is skipped), none for leavers."""
    said = reading.groups or {}
    good: dict[str, str] = {}  # a name as the directory has it -> as stored ("" : skipped)
    for name in sorted({g for groups in said.values() for g in groups}):
        try:
            good[name] = check_group_name(name)
        except InvalidInput as exc:
            good[name] = ""
            out.skipped.append(f"group {name!r}: {exc.message}")
    names = {p.external_id: p.name for p in out.add}
    names |= {p.external_id: name for name, p in out.link}
    names |= {ext: row.name for ext, row in current.ids.items()}
    for ext in sorted(reading.ids | current.groups.keys()):
        if ext not in names or ext in removed:
            continue  # a conflict or a skipped entry (not here), or removed with its groups
        want = {good[g] for g in said.get(ext, ()) if good[g]} if ext in reading.ids else set()
        have = current.groups.get(ext, set())
        if want != have:
            out.groups[ext] = (names[ext], sorted(want - have), sorted(have - want))


def _person_fields(want: dict[str, Any]) -> dict[str, Any]:
    return {
        "display_name": want["display_name"],
        "email": want["email"],
        "phone": want["phone"],
        "disabled": not want["enabled"],
    }


class DirectorySync:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.writer = ChangeWriter(store)
        self.max_changes = int(config.get("directory", "max_changes"))

    def sources(self, name: str | None = None) -> list[Source]:
        found = [Source.of(s) for s in self.config.get("directory", "sources")]
        if not found:
            raise InvalidInput(
                "no directory source is configured: add a [[directory.sources]] table to "
                "server.toml (see the commented example in it)"
            )
        if name is not None:
            found = [s for s in found if s.name == name]
            if not found:
                raise NotFound(f"no directory source named {name!r} in server.toml")
        return found

    # -- the bind password ---------------------------------------------------------------

    def set_password(self, name: str, password: str, client: str = "cli") -> None:
        (source,) = self.sources(name)
        self._require()
        sealed = (
            self.store.box.seal(password.encode(), _context(source.name)).hex() if password else ""
        )
        self.writer.commit(
            [Change("directory.password", {"name": source.name, "sealed": sealed})],
            [AuditEvent("directory.password", "ok", client=client, detail=source.name)],
        )

    def password(self, name: str) -> str:
        with self.store.read() as conn:
            sealed = conn.scalar(
                select(t.meta.c.value).where(t.meta.c.key == "directory.password." + name)
            )
        if not sealed:
            return ""
        return self.store.box.open(bytes.fromhex(sealed), _context(name)).decode()

    # -- runs ----------------------------------------------------------------------------

    def run(
        self,
        name: str | None = None,
        *,
        dry_run: bool = False,
        approve: bool = False,
        full: bool = False,
        progress: Progress | None = None,
        client: str = "cli",
    ) -> list[RunResult]:
        """Synchronise each source (or ``name``). A source that cannot be read is reported in
        its result (``error``) and recorded in its status; the others still run."""
        sources = self.sources(name)
        self._require()
        if not dry_run:
            check_writable(self.store)  # a subordinate says so before reading anything
        return [
            self._run_one(
                s, dry_run=dry_run, approve=approve, full=full, progress=progress, client=client
            )
            for s in sources
        ]

    def _run_one(
        self,
        source: Source,
        *,
        dry_run: bool,
        approve: bool,
        full: bool,
        progress: Progress | None,
        client: str,
    ) -> RunResult:
        started = time.monotonic()
        state = self.state(source.name)
        try:
            reading = read(
                source,
                self.password(source.name),
                cursor="" if full else str(state.get("cursor", "")),
                full=full,
                progress=progress,
            )
            current = _Current(self.store, source.name)
            if reading.mode == "incremental" and (
                reading.ids - current.ids.keys() - reading.people.keys()
            ):  # someone unchanged there is missing here (removed by hand): read everything
                reading = read(source, self.password(source.name), full=True, progress=progress)
            the_plan = plan(source, reading, current)
            if source.groups and not self._groups_known():
                the_plan.groups.clear()
                the_plan.notes.append(
                    f"groups were not synchronised: they need data format "
                    f"{formats.GROUPS_FORMAT}; run `openmfa migrate` (one node) or finish the "
                    "farm's upgrade with `openmfa farm finalize`"
                )
        except DirectoryError as exc:
            result = RunResult(source.name, "", Plan(source.name), False, 0.0, error=exc.message)
            if not dry_run:
                self._record(source, state, result, client, cursor=str(state.get("cursor", "")))
            return result
        losing = len(the_plan.disable) + len(the_plan.remove)
        result = RunResult(source.name, reading.mode, the_plan, False, 0.0)
        if dry_run:
            result.seconds = time.monotonic() - started
            return result
        if losing > self.max_changes and not approve:
            result.stopped = True
            result.error = (
                f"this run would disable or remove {losing} people, more than [directory] "
                f"max_changes = {self.max_changes}; nothing was changed. Check them with "
                "`openmfa directory sync --dry-run`, then run `openmfa directory sync --approve`"
            )
            result.seconds = time.monotonic() - started
            self._record(source, state, result, client, cursor=str(state.get("cursor", "")))
            return result
        self._apply(source, the_plan, current, client)
        result.applied = True
        result.seconds = time.monotonic() - started
        self._record(source, state, result, client, cursor=reading.cursor)
        return result

    def _apply(self, source: Source, p: Plan, current: _Current, client: str) -> None:
        now = time.time()
        changes: list[Change] = []
        events: list[AuditEvent] = []
        ids = {r.name: r.id for r in current.ids.values()}
        with self.store.read() as conn:
            for name, _person in p.link:
                ids[name] = int(
                    conn.scalar(select(t.users.c.id).where(t.users.c.name == name)) or 0
                )
        ends = ends_known(self.store)  # data format 6: their sessions end on every host
        for name in p.remove:
            changes.append(Change("user.delete", {"id": ids[name]}))
            changes += [end_change(name, "", now)] if ends else []
            events.append(self._event("directory.remove", name, client, source.name))
        for name, why in p.disable:
            changes.append(
                Change("user.update", {"id": ids[name], "fields": {"enabled": False}, "at": now})
            )
            changes += [end_change(name, "", now)] if ends else []
            events.append(self._event("directory.disable", name, client, f"{source.name}: {why}"))
        renames = [(old, person) for old, person, fields in p.update if "name" in fields]
        targets = {person.name for _, person in renames}
        for old, _person in renames:  # two-step when a new name is someone's old one (swaps)
            if old in targets:
                changes.append(
                    Change(
                        "user.update",
                        {"id": ids[old], "fields": {"name": f"~sync~{ids[old]}"}, "at": now},
                    )
                )
        for old, person, fields in p.update:
            changes.append(Change("user.update", {"id": ids[old], "fields": fields, "at": now}))
            if ("name" in fields or fields.get("enabled") is False) and ends:
                changes.append(end_change(old, "", now))  # a cookie names the old name
            if "name" in fields:
                events.append(
                    self._event("directory.rename", person.name, client, f"{old} -> {person.name}")
                )
        for name, person in p.link:
            fields = {
                "source": source.name,
                "external_id": person.external_id,
                "display_name": person.display_name,
                "email": person.email,
                "phone": person.phone,
                "enabled": not person.disabled,
            }
            changes.append(Change("user.update", {"id": ids[name], "fields": fields, "at": now}))
        for person in p.add:
            changes.append(
                Change(
                    "user.add",
                    {
                        "name": person.name,
                        "display_name": person.display_name,
                        "email": person.email,
                        "phone": person.phone,
                        "enabled": not person.disabled,
                        "source": source.name,
                        "external_id": person.external_id,
                        "at": now,
                    },
                )
            )
        for i in range(0, len(changes), BATCH):
            self.writer.commit(changes[i : i + BATCH], events if i == 0 else [])
        if not changes and events:
            self.writer.commit([], events)
        self._apply_groups(source, p, client)

    def _apply_groups(self, source: Source, p: Plan, client: str) -> None:
        """The ``directory`` groups, once every person of the run is here (the added ones
        have their ids now)."""
        if not p.groups:
            return
        with self.store.read() as conn:
            query = select(t.users.c.external_id, t.users.c.id).where(
                t.users.c.source == source.name
            )
            ids = {r.external_id: int(r.id) for r in conn.execute(query)}
        changes: list[Change] = []
        events: list[AuditEvent] = []
        for ext, (name, added, removed) in sorted(p.groups.items()):
            if ext in ids:
                changes.append(groups_change(ids[ext], DIRECTORY, added, removed))
                detail = " ".join([*(f"+{g}" for g in added), *(f"-{g}" for g in removed)])
                events.append(
                    self._event("directory.groups", name, client, f"{source.name}: {detail}"[:1000])
                )
        for i in range(0, len(changes), BATCH):
            self.writer.commit(changes[i : i + BATCH], events[i : i + BATCH])

    @staticmethod
    def _event(action: str, name: str, client: str, detail: str) -> AuditEvent:
        return AuditEvent(action, "ok", user_name=name, client=client, detail=detail)

    def _record(
        self, source: Source, before: dict[str, Any], result: RunResult, client: str, cursor: str
    ) -> None:
        """The run's outcome in the source's state (replicated) and the audit log."""
        counts = result.plan.counts()
        outcome = "error" if result.error and not result.stopped else (
            "stopped" if result.stopped else "ok"
        )  # fmt: skip
        state = {
            **before,
            "last_run_at": time.time(),
            "result": outcome,
            "error": result.error,
            "mode": result.mode or before.get("mode", ""),
            "counts": counts,
            "seconds": round(result.seconds, 3),
            "cursor": cursor,
            "node": self.store.node_name,
        }
        if outcome == "ok":
            state["last_success_at"] = state["last_run_at"]
        detail = " ".join(f"{k}={v}" for k, v in counts.items())
        detail = f"{source.name} mode={result.mode or '-'} {detail}"
        if result.error:
            detail += f" error={result.error[:300]}"
        self.writer.commit(
            [Change("directory.state", {"name": source.name, "state": state, "at": time.time()})],
            [AuditEvent("directory.sync", outcome, client=client, detail=detail)],
        )

    def state(self, name: str) -> dict[str, Any]:
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.DIRECTORY_FORMAT:
                return {}
            value = conn.scalar(
                select(t.directory_sources.c.state).where(t.directory_sources.c.name == name)
            )
        return dict(value or {})

    def status(self) -> list[SourceStatus]:
        return [SourceStatus(s.name, s.url, s.kind, self.state(s.name)) for s in self.sources()]

    def _groups_known(self) -> bool:
        with self.store.read() as conn:
            return formats.local_format(conn) >= formats.GROUPS_FORMAT

    def _require(self) -> None:
        with self.store.read() as conn:
            formats.require(conn, formats.DIRECTORY_FORMAT, "directory synchronisation")


def _context(name: str) -> str:
    return f"directory:{name}:password"
