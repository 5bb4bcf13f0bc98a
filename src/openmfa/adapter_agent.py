"""An adapter host's side of the farm's inventory and upgrades: ``openmfa adapter agent``.

An adapter host runs no service of OpenMFA's own — the identity provider (LemonLDAP::NG, nginx)
calls the nodes or the portals — so a small agent stands in for it: it reports the host every
few seconds through the SDK with the adapter key (kind ``adapter``; its health is whether each
identity provider in ``[adapter] idps`` still has OpenMFA registered), and carries out the
farm's orders here:

- upgrade: ``openmfa upgrade --from-bundle B`` (this host's release; ``adapter.toml`` merged),
  then the new release's ``openmfa adapter upgrade IDP`` for each identity provider — the
  registration moves with no moment without a second factor — then the agent starts the new
  release in its own place (``exec``: the same process id, for its service manager);
- rollback: ``openmfa adapter rollback IDP`` (back to the registration the upgrade replaced, the
  same no-gap way), then ``openmfa rollback``, then the old release in its place.

If a registration cannot move, the identity providers already moved go back, the release goes
back, and the agent reports what failed: the orchestrator stops there.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .adapters.config import AdapterConfig
from .errors import OpenMfaError
from .install.record import InstallRecord
from .sdk.models import ComponentOrder

log = logging.getLogger("openmfa.adapter_agent")

HEALTH_EVERY = 60.0
"""Seconds between two looks at the identity providers' registrations (each asks their tool)."""
LOCK = "adapter.lock"
ORDERS = "adapter.orders.json"


def registrations(cfg: AdapterConfig) -> str:
    """ "ok" when every identity provider in ``idps`` has OpenMFA registered (and LemonLDAP::NG
    requires a second factor), else what is wrong."""
    from .adapters.lemonldap import LemonLdap
    from .adapters.nginx import Nginx

    problems = []
    for idp in cfg.idps:
        try:
            if idp == "lemonldap":
                reg = LemonLdap(cfg.lemonldap).status()
                if reg.instance is None:
                    problems.append("lemonldap: OpenMFA is not registered")
                elif not reg.required:
                    problems.append("lemonldap: a second factor is not required")
            elif Nginx(cfg.nginx).state() is None:
                problems.append("nginx: the forward-auth files are not written")
        except OpenMfaError as exc:
            problems.append(f"{idp}: {exc.message}")
    return "; ".join(problems) or "ok"


class Health:
    """The registrations' state, looked at again at most every ``HEALTH_EVERY`` seconds."""

    def __init__(self, cfg: AdapterConfig, look: Callable[[AdapterConfig], str] = registrations):
        self.cfg = cfg
        self.look = look
        self._said = ""
        self._at = -HEALTH_EVERY

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self._at >= HEALTH_EVERY or self._said != "ok":
            self._said = self.look(self.cfg)
            self._at = now
        return self._said


def move_command(config_path: Path, record: Path, order: ComponentOrder, unit: str) -> list[str]:
    """``openmfa adapter move-host`` for ``order``; under a service manager's ``unit``, in a
    transient unit of its own (``systemd-run --wait``: stopping the agent's unit, which ends
    every process in it, does not cut a move in half, and the agent still learns how it ended).
    """
    from .farm.agent import command_line

    log_path = InstallRecord.load(record).root_path / f"farm-{order.action}.log"
    args = ["move-host", order.action, "--config", str(config_path.resolve())]
    if order.action == "upgrade":
        args += ["--bundle", order.bundle]
    argv = command_line(record, log_path, "adapter", *args, unit=unit)
    return [argv[0], "--wait", *argv[1:]] if unit else argv


def launch_move(
    config_path: Path, record: Path
) -> Callable[[ComponentOrder], subprocess.Popen[bytes]]:
    """Starts ``openmfa adapter move-host`` for an order, as this agent's child (the agent
    waits for it, then starts the release it left). If the agent is stopped meanwhile, the move
    goes on to its end; the agent started again runs the release it left."""
    from .node.control import service_unit

    def launch(order: ComponentOrder) -> subprocess.Popen[bytes]:
        argv = move_command(config_path, record, order, service_unit(dict(os.environ)))
        log_path = InstallRecord.load(record).root_path / f"farm-{order.action}.log"
        with log_path.open("a") as out:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    return launch


def current_openmfa(record: Path) -> Path:
    return InstallRecord.load(record).root_path / "current" / "venv" / "bin" / "openmfa"


def move_host(
    action: str,
    config_path: Path,
    record: Path,
    bundle: str,
    idps: tuple[str, ...],
    say: Callable[[str], None],
    run: Callable[[list[str]], None],
) -> None:
    """The farm's order on this host (see the module's text); raises with what failed, the
    host put back as it was. ``run`` runs a command, raising ``OpenMfaError`` when it fails."""
    from .errors import InstallFailed

    def openmfa(*args: str) -> None:
        run([str(current_openmfa(record)), *args])

    cfg = ["--config", str(config_path)]
    if action == "rollback":
        for idp in idps:
            say(f"[{idp}] back to the registration the upgrade replaced (no gap)")
            openmfa("adapter", "rollback", idp, *cfg)
        say("this host's release goes back")
        openmfa("rollback", "--yes", "--record", str(record))
        return
    say(f"this host's release: upgrading from {bundle}")
    openmfa("upgrade", "--yes", "--from-bundle", bundle, "--record", str(record))
    moved: list[str] = []
    try:
        for idp in idps:
            say(f"[{idp}] moving the registration to the new release (no gap)")
            openmfa("adapter", "upgrade", idp, *cfg)
            moved.append(idp)
    except OpenMfaError as exc:
        say(f"the registration did not move: {exc.message}; putting everything back")
        for idp in reversed(moved):
            openmfa("adapter", "rollback", idp, *cfg)
        openmfa("rollback", "--yes", "--record", str(record))
        raise InstallFailed(
            f"the adapters could not move to the new release ({exc.message}); this host is "
            "back on its previous release, its registrations as they were"
        ) from None


def run_checked(argv: list[str]) -> None:
    """Run a step of ``move_host``, its output going to ours (the farm's log)."""
    from .errors import InstallFailed

    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise InstallFailed(f"`{' '.join(argv[1:4])} ...` failed (exit {proc.returncode})")
