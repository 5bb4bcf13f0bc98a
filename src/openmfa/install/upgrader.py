"""``openmfa upgrade`` and ``openmfa rollback``: the seed document's manual steps, done, checked
and undoable.

Steps (each recorded in ``ROOT/upgrade-journal.json`` before the next starts, so a crash at any
point is resumed — or rolled back — by running the command again):

    checks -> backup -> install -> migrate -> config -> themes -> switch -> verify -> done

Invariant owned here: until ``verify`` has passed, the old release and the pre-upgrade backup
are enough to put everything back; ``rollback`` (or any failure) switches ``current`` back,
restores the backup if the data had been migrated, and starts the old release again.

A host may run the Mobile App Web Service and the User Portal beside the node (``mobile.toml``,
``portal.toml`` in the data directory, each its own ``openmfa mobile|portal serve`` process) or
without a node (installed with ``--components mobile`` or ``portal``: no data file). Their
configuration files are merged like ``server.toml``, each service is restarted on the new
release where it ran (same URL and prefix) and must reach its nodes before the upgrade counts as
done; a host without a node backs up its configuration files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..errors import InstallFailed, OpenMfaError
from ..node.control import Ahead, NodeControl
from ..radius.handoff import take as take_radius_socket
from ..store.backups import Backups
from ..store.database import DataDir, driver_url
from ..store.role import SHARED, role_from
from . import compat, probe, synthetic
from .config_merge import merge
from .installer import check_prerequisites
from .journal import JOURNAL as JOURNAL
from .journal import Journal as Journal
from .mobile_control import ConsoleControl, MobileControl, PortalControl, ServiceControl
from .record import InstallRecord
from .record import last_upgrade as last_upgrade
from .releases import (
    install_release,
    lower_priority,
    package_dir,
    switch_current,
    wheel_version,
)
from .themes import undo_themes, upgrade_themes

STEPS = ("checks", "backup", "install", "migrate", "config", "themes", "switch", "verify", "done")
CRASH_HOOK = "OPENMFA_UPGRADE_CRASH_AFTER"
"""Fault injection for tests: SIGKILL this process right after the named step is recorded."""


SERVICE_CONFIGS = {
    "mobile": "openmfa.mobile.config",
    "portal": "openmfa.portal.config",
    "adapter": "openmfa.adapters.config",
    "console": "openmfa.console.config",
}
"""The files beside server.toml an upgrade merges three ways, and the module shipping each
one's defaults (``default_text``)."""


class Upgrade:
    def __init__(
        self,
        record_file: Path,
        say: Callable[[str], None],
        data_comes_back: Callable[[DataDir, dict[str, Any]], bool] | None = None,
    ) -> None:
        """``data_comes_back(data_dir, last_upgrade)``: may this node go back now, and does its
        data come back from the pre-upgrade backup (True) or stay (False)? It raises to refuse
        (a farm's rules: ``farm.agent.data_comes_back``). Without it the data comes back."""
        self.data_comes_back = data_comes_back or (lambda _dd, _last: True)
        self.record_file = record_file
        self.record = InstallRecord.load(record_file)
        self.root = self.record.root_path
        self.dd = DataDir(Path(self.record.data_dir))
        self.journal_path = self.root / JOURNAL
        self.say = say
        self.node = NodeControl(self.dd.root, say)
        self.services: dict[str, ServiceControl] = {
            "mobile": MobileControl(self.dd.root, say),
            "portal": PortalControl(self.dd.root, say),
            "console": ConsoleControl(self.dd.root, say),
        }
        """The services beside the nodes a host may run (each with its NAME.toml)."""
        self.server = "server" in self.record.components
        """False on a host that runs only services beside the nodes (no data file, no node)."""
        self._held: socket.socket | None = None
        """The node's RADIUS socket from its stop to its start (radius.handoff)."""
        self._ahead: Ahead | None = None
        """The next node process, started before the node stopped, waiting to go on."""

    # -- public -------------------------------------------------------------------------------

    def run(self, *, wheel: Path | None, bundle: Path | None, dry_run: bool = False) -> str:
        journal = Journal.load(self.journal_path)
        if journal is None:
            target = self._target_version(wheel, bundle)
            if target == self.record.version:
                raise InstallFailed(f"OpenMFA {target} is installed already; nothing to do")
            if not dry_run:
                self._may_go_to(target, wheel, bundle)
            journal = Journal(self.record.version, target, str(wheel or bundle))
        else:
            self.say(
                f"resuming the upgrade {journal.from_version} -> {journal.to_version} "
                f"after: {', '.join(journal.done) or 'nothing'}"
            )
            if wheel is None and bundle is None:  # the journal knows where the release came from
                source = Path(journal.source)
                wheel, bundle = (source, None) if source.suffix == ".whl" else (None, source)
        if dry_run:
            self.say(
                f"would upgrade {journal.from_version} -> {journal.to_version}: "
                + " -> ".join(s for s in STEPS if s not in journal.done)
                + " (whether the new release reads this data is asked of it once installed)"
            )
            return journal.to_version
        try:
            for step in STEPS:
                if step in journal.done:
                    continue
                self.say(f"[{STEPS.index(step) + 1}/{len(STEPS)}] {step}")
                getattr(self, f"_{step}")(journal, wheel, bundle)
                journal.done.append(step)
                journal.save(self.journal_path)
                if os.environ.get(CRASH_HOOK) == step:
                    os.kill(os.getpid(), signal.SIGKILL)
        except OpenMfaError as exc:
            self.say(f"the upgrade failed: {exc.message}")
            self._undo(journal)
            raise InstallFailed(
                f"upgrade to {journal.to_version} failed and was rolled back "
                f"to {journal.from_version}: {exc.message}"
            ) from None
        self.journal_path.unlink()
        return journal.to_version

    def rollback(self) -> str:
        journal = Journal.load(self.journal_path)
        if journal is not None:
            self._undo(journal)
            return journal.from_version
        last = last_upgrade(self.record)
        if last is None:
            raise InstallFailed(
                f"there is no upgrade to roll back: this installation runs {self.record.version} "
                "and no upgrade to it is recorded"
            )
        if not self.server:
            self.say(f"rolling back {last['to']} -> {last['from']} (no node on this host)")
        elif self.data_comes_back(self.dd, last):
            self.say(
                f"rolling back {last['to']} -> {last['from']}: the data goes back to backup "
                f"{last['backup']} (the current state is kept as a backup first)"
            )
        else:
            self.say(
                f"rolling back {last['to']} -> {last['from']}: the shared database stays as it "
                "is (its format has not moved since the upgrade; the schema only added things)"
            )
        undo = Journal(
            last["from"],
            last["to"],
            "rollback",
            backup_id=last["backup"],
            done=list(STEPS[:-2]),
            server_was_running=self._server_pid() is not None,
        )
        for key, running in self._services_running().items():
            setattr(undo, key, running)
        self._undo(undo, data_changed=last.get("migrated", True))
        self.record = InstallRecord.load(self.record_file)
        self.record.history.append({"action": "rollback", "from": last["to"], "to": last["from"]})
        self.record.save(self.record_file)
        return str(last["from"])

    def _may_go_to(self, target: str, wheel: Path | None, bundle: Path | None) -> None:
        """Refuse, before anything on the host changes, a release that could not take over from
        this one (``compat.check_target``)."""
        check_prerequisites(self.root, need_bytes=self._need_bytes())
        compat.check_target(
            self.root,
            target,
            self.record.version,
            self.dd if self.server else None,
            lambda: install_release(self.root, wheel=wheel, bundle=bundle),
        )

    # -- steps ----------------------------------------------------------------------------------

    def _checks(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        check_prerequisites(self.root, need_bytes=self._need_bytes())
        j.server_was_running = self._server_pid() is not None
        for key, running in self._services_running().items():
            setattr(j, key, running)

    def _services_running(self) -> dict[str, bool]:
        return {f"{n}_was_running": c.pid() is not None for n, c in self.services.items()}

    def _was_running(self, j: Journal) -> list[str]:
        return [n for n in self.services if getattr(j, f"{n}_was_running")]

    def _backup(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        if not self.server:  # a host without a node: its configuration is all it keeps
            j.backup_id = f"before-upgrade-{_slug(j.to_version)}-{time.strftime('%Y%m%dT%H%M%S')}"
            where = self._backup_dir(j)
            where.mkdir(parents=True, exist_ok=True)
            for control in self.services.values():
                cfg = control.config_file
                if cfg.exists():
                    shutil.copy2(cfg, where / cfg.name)
                    self.say(f"    {cfg.name} saved in {where}")
            return
        backups = Backups(self.dd, self.dd.config(), install_root=self.root)
        info = backups.create(f"before-upgrade-{_slug(j.to_version)}")
        j.backup_id = info.id
        self.say(f"    backup {info.id} taken and verified (with every key file of this host)")
        for note in backups.notes:
            self.say(f"    warning: {note}")

    def _backup_dir(self, j: Journal) -> Path:
        if not self.server:
            return self.root / "backups" / j.backup_id
        return Path(Backups(self.dd, self.dd.config()).get(j.backup_id).path)

    def _install(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        install_release(self.root, wheel=wheel, bundle=bundle)

    def _migrate(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        if not self.server:
            self.say("    no data file on this host (no node here)")
            return
        said = self._openmfa(j.to_version, "migrate").strip().splitlines()
        self.say(f"    {said[-1]}" if said else "    migrated")  # e.g. "data format 1 -> 6"

    def _config(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        if not self.server:
            self._service_configs(j, self._backup_dir(j))
            return
        old = self._defaults(j.from_version)
        new = self._defaults(j.to_version)
        cfg = self.dd.config_file
        admin = cfg.read_text() if cfg.exists() else ""
        optional = self._optional(j.to_version)
        merged, report = merge(old, admin, new, release=j.to_version, optional=optional)
        # Where the backup is, from the file as it was: the merged file is the new release's
        # to read (it may hold settings this, older, code does not know).
        backup_dir = self._backup_dir(j)
        tmp = cfg.with_name(cfg.name + ".merged")
        tmp.write_text(merged)
        os.replace(tmp, cfg)
        j.report = report.lines()
        (backup_dir / "config-merge.txt").write_text("\n".join(j.report) + "\n")
        kept = sum(1 for line in j.report if line.startswith("kept"))
        self.say(f"    kept {kept} settings as they were; report: {backup_dir}/config-merge.txt")
        for line in j.report:
            if not line.startswith("kept"):
                self.say(f"    {line}")
        self._service_configs(j, backup_dir)

    def _service_configs(self, j: Journal, backup_dir: Path) -> None:
        """mobile.toml, portal.toml and adapter.toml beside server.toml (the services and
        adapters of this host) are merged the same three ways; what the admin set stays."""
        for name in SERVICE_CONFIGS:
            cfg = self.dd.root / f"{name}.toml"
            if not cfg.exists():
                continue
            saved = backup_dir / cfg.name
            if not saved.exists():  # a resumed step must not save the merged file as original
                shutil.copy2(cfg, saved)
            new = self._defaults(j.to_version, SERVICE_CONFIGS[name])
            if not new:  # the new release has no such file (it never drops one: kept as is)
                continue
            old = self._defaults(j.from_version, SERVICE_CONFIGS[name]) or new
            merged, report = merge(old, saved.read_text(), new, release=j.to_version)
            tmp = cfg.with_name(cfg.name + ".merged")
            tmp.write_text(merged)
            os.replace(tmp, cfg)
            lines = [f"{cfg.name}: {line}" for line in report.lines()]
            (backup_dir / f"{name}-config-merge.txt").write_text("\n".join(lines) + "\n")
            j.report += lines
            self.say(f"    {cfg.name} merged (your settings kept); report: {backup_dir}")

    def _themes(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        if not self.server and "portal" not in self.record.components:
            return  # the mobile service has no pages
        for line in upgrade_themes(
            self.root / "themes",
            package_dir(self.root, j.to_version) / "themes",
            self._backup_dir(j),
        ):
            self.say(f"    {line}")
            j.report.append(f"theme     {line}")

    def _switch(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        self._stop_server(then=j.to_version)
        for control in self.services.values():
            control.stop()
        switch_current(self.root, j.to_version)
        self._start_again(j)

    def _start_again(self, j: Journal) -> None:
        if j.server_was_running:
            self._start_server()
        else:
            self._let_go()
        for name in self._was_running(j):
            self.services[name].start(self._current_bin())

    def _verify(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        if self.server:
            self._synthetic_authentication(j.server_was_running)
        for name in self._was_running(j):
            self._service_check(name)
        self.record.version = j.to_version
        self.record.history.append(
            {
                "action": "upgrade",
                "from": j.from_version,
                "to": j.to_version,
                "backup": j.backup_id,
                "migrated": self.server,
                "at": time.time(),
            }
        )
        self.record.save(self.record_file)

    def _done(self, j: Journal, wheel: Path | None, bundle: Path | None) -> None:
        self.say(f"upgraded {j.from_version} -> {j.to_version}; backup {j.backup_id} kept")

    # -- undo -------------------------------------------------------------------------------

    def _undo(self, j: Journal, data_changed: bool | None = None) -> None:
        migrated = "migrate" in j.done if data_changed is None else data_changed
        restore = bool(j.backup_id) and (migrated or "config" in j.done)
        disturbed = restore or "switch" in j.done
        self.say(f"rolling back to {j.from_version}")
        if self._ahead is not None:  # started ahead on the release being left: not wanted
            self._ahead.cancel()
            self._ahead = None
        if disturbed:
            self._stop_server(then=j.from_version)
            for control in self.services.values():
                control.stop()
        if (self.root / "releases" / j.from_version).exists():
            switch_current(self.root, j.from_version)
        if restore:
            self._put_back_config(j)  # the old release must be able to read it to restore
            if not self.server:
                for name in SERVICE_CONFIGS:
                    if (self._backup_dir(j) / f"{name}.toml").exists():
                        self.say(f"    {name}.toml put back as it was")
            elif self._shared_database():
                self.say(
                    "    the shared database stays as it is: the other nodes keep writing to it, "
                    "and schema changes only add (the previous release reads on)"
                )
            else:
                self._openmfa(
                    j.from_version, "backup", "restore", j.backup_id, "--yes", behind=False
                )
                self.say(f"    restored backup {j.backup_id}")
                self._carry_audit()
        if (
            "themes" in j.done
            and j.backup_id
            and (self.server or "portal" in self.record.components)
        ):
            undo_themes(self.root / "themes", self._backup_dir(j))
        if disturbed:
            self._start_again(j)
        if j.server_was_running and disturbed:
            self._synthetic_authentication(True)
        if disturbed:
            for name in self._was_running(j):
                self._service_check(name)
        self.record = InstallRecord.load(self.record_file)
        self.record.version = j.from_version
        self.record.save(self.record_file)
        self.journal_path.unlink(missing_ok=True)
        self.say(f"rolled back: {j.from_version} is serving again")

    # -- helpers ------------------------------------------------------------------------------

    def _carry_audit(self) -> None:
        """Audit events are a log, not state: those recorded since the backup come back from
        the copy ``backup restore`` kept of the data before it, with their ids, so the node's
        event ids keep rising (a farm master takes each node's events in id order)."""
        if self.dd.config().get("store", "url"):
            return  # PostgreSQL: the state before the restore is in the "before-restore" dump
        kept = [b for b in Backups(self.dd, self.dd.config()).all() if b.reason == "before-restore"]
        if not kept:
            return
        prior = Path(max(kept, key=lambda b: b.created_at).path) / self.dd.data_file.name
        db = sqlite3.connect(self.dd.data_file, isolation_level=None, timeout=30, uri=True)
        try:
            db.execute("ATTACH DATABASE ? AS prior", (f"file:{prior}?mode=ro",))
            # The restored file's columns: it is of the release rolled back to, which may lack
            # one this release added (schema 0012's source_enc); schemas only add columns.
            cols = ", ".join(str(r[1]) for r in db.execute("PRAGMA main.table_info(audit)"))
            db.execute("BEGIN IMMEDIATE")
            carried = db.execute(
                f"INSERT INTO main.audit ({cols}) SELECT {cols} FROM prior.audit "  # noqa: S608
                "WHERE id > (SELECT coalesce(max(id), 0) FROM main.audit) ORDER BY id"
            ).rowcount
            db.execute("COMMIT")
        finally:
            db.close()
        if carried:
            self.say(f"    kept the {carried} audit events recorded since the backup")

    def _shared_database(self) -> bool:
        """Whether this node is one of a shared-database farm's (read without this release's
        config checks: the file may hold settings of another release)."""
        try:
            url = tomllib.loads(self.dd.config_file.read_text()).get("store", {}).get("url", "")
        except (OSError, tomllib.TOMLDecodeError):
            return False
        if not url:
            return False
        engine = create_engine(driver_url(str(url)), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                role = role_from(conn)
        except SQLAlchemyError:
            return False
        finally:
            engine.dispose()
        return role.name == SHARED

    def _put_back_config(self, j: Journal) -> None:
        """server.toml as it was before the upgrade, from the backup (the merged file may hold
        settings the old release does not know). Read without validating: only [backup] dir."""
        if not self.server:
            for name in SERVICE_CONFIGS:
                saved = self._backup_dir(j) / f"{name}.toml"
                if saved.exists():
                    shutil.copy2(saved, self.dd.root / saved.name)
            return
        cfg = self.dd.config_file
        try:
            where = tomllib.loads(cfg.read_text()).get("backup", {}).get("dir", "")
        except (OSError, tomllib.TOMLDecodeError):
            where = ""
        saved = Path(where or self.dd.backups) / j.backup_id / cfg.name
        if saved.exists():
            shutil.copy2(saved, cfg)
        for name in SERVICE_CONFIGS:
            service = saved.with_name(f"{name}.toml")
            if service.exists():
                shutil.copy2(service, self.dd.root / service.name)

    def _target_version(self, wheel: Path | None, bundle: Path | None) -> str:
        if wheel is not None:
            return wheel_version(wheel)
        if bundle is not None:
            import tempfile

            from .releases import open_bundle
            from .signing import trusted

            with tempfile.TemporaryDirectory() as scratch:
                return open_bundle(bundle, Path(scratch), trusted(self.root))[0]
        raise InstallFailed("give --from-wheel or --from-bundle")

    def _need_bytes(self) -> int:
        data = sum(p.stat().st_size for p in self.dd.root.glob("openmfa.db*"))
        return 2 * data + 300 * 2**20

    def _bin(self, version: str) -> Path:
        return self.root / "releases" / version / "venv" / "bin" / "openmfa"

    def _openmfa(self, version: str, *args: str, behind: bool = True) -> str:
        """``openmfa ARGS`` of ``version``; ``behind``: at a lower CPU priority than the
        services (not while no node runs: then it is what everyone waits for)."""
        out = subprocess.run(
            [str(self._bin(version)), *args, "--data-dir", str(self.dd.root)],
            capture_output=True,
            text=True,
            preexec_fn=lower_priority if behind else None,
        )
        if out.returncode != 0:
            raise InstallFailed(
                f"`openmfa {' '.join(args)}` of {version} failed: "
                f"{out.stderr.strip() or out.stdout.strip()}"
            )
        return out.stdout

    def _takes_over(self, version: str) -> bool:
        return probe.takes_over(self._bin(version).with_name("python"))

    def _optional(self, version: str) -> frozenset[str]:
        return probe.optional(self._bin(version).with_name("python"))

    def _defaults(self, version: str, module: str = "openmfa.config") -> str:
        return probe.defaults(self._bin(version).with_name("python"), module)

    def _service_check(self, name: str, seconds: float = 30) -> None:
        """A service, restarted on the release now current (it exits at once, with the reason
        in its log, when it cannot read its NAME.toml), answers where it did and reaches its
        nodes within ``seconds`` (its /healthz says ``ok``)."""
        control = self.services[name]
        what = control.what.removeprefix("the ")
        url = control.url()
        deadline = time.monotonic() + seconds
        status = "not answering"
        while time.monotonic() < deadline:
            try:
                status = str(httpx.get(url + "/healthz", timeout=2).json().get("status"))
            except (httpx.HTTPError, ValueError):
                status = "not answering"
            if status == "ok":
                self.say(f"    {what} answering at {url} and reaching its nodes")
                return
            time.sleep(0.2)
        raise InstallFailed(
            f"{control.what} at {url} is {status} after {seconds:.0f} s (it must reach "
            f"its nodes); see {self.dd.root / control.log_name}"
        )

    def _current_bin(self) -> Path:
        return self.root / "current" / "venv" / "bin" / "openmfa"

    def _server_pid(self) -> int | None:
        return self.node.pid()

    def _stop_server(self, then: str) -> None:
        """Stop the node; ``then``: the release that starts next. When that release can take
        them over, the node's RADIUS socket is held while no node runs — requests wait in its
        queue instead of being lost (radius.handoff) — and the next process is started ahead,
        its start-up overlapping this one's shutdown (``NodeControl.start_ahead``). A node run
        by a service manager is started by it, which cannot pass the socket on."""
        if self._held is None and self.server and self.node.pid() is not None:
            how = self.node.invocation()
            if (how is None or not how.unit) and self._takes_over(then):
                self._held = take_radius_socket(self.dd.root)
                self._ahead = self.node.start_ahead(self._bin(then), radius=self._held)
        try:
            self.node.stop()
        except BaseException:
            self._let_go()
            raise

    def _start_server(self) -> None:
        held, ahead = self._held, self._ahead
        self._held = self._ahead = None
        try:
            self.node.start(self._current_bin(), radius=held, ahead=ahead)
        finally:
            if held is not None:
                held.close()

    def _let_go(self) -> None:
        """The node is not started again by this run: the process started ahead leaves."""
        if self._ahead is not None:
            self._ahead.cancel()
        if self._held is not None:
            self._held.close()
        self._held = self._ahead = None

    def _url(self) -> str:
        return self.node.url()

    def _synthetic_authentication(self, over_http: bool) -> None:
        """A throw-away user proves the node decides correctly (``install.synthetic``)."""
        version = (
            self.record.version
            if not (self.root / "current").exists()
            else Path(os.readlink(self.root / "current")).name
        )
        synthetic.authenticate(
            lambda *args: self._openmfa(version, *args),
            self._url() if over_http else None,
            self.say,
        )


def _slug(version: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in version)
