"""Push sign-in at the node: the service the transports call, which guards where pushes live.

Push requests, their answers and activation codes live at the farm's master (like claims), so
the phone's answer may reach any node's mobile service. Every call here that must run there
asks the node's role first (``store.role``): a subordinate sends its caller to the master
(``NotMaster`` with the master's URL; the SDK clients follow), and during a handover of the
master's role (a second or so) the caller waits for its outcome rather than being sent back to
where it is. A transport need not ask first.

The parts, each with its invariants: ``push_devices`` (activation codes, device records and
keys), ``push_requests`` (opened, polled, answered once, read back), ``push_fraud`` ("this
wasn't me" and the blocks it leaves). The device protocol itself is ``core.push``.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection

from ..config import Config
from ..contract import ActivationCode, DeviceActivated, DevicePoll, DeviceView, PushOutcome
from ..core.verification import Decision, Reason
from ..errors import NotMaster
from ..store.database import Store
from ..store.role import read_role, role_from
from .accounts import Accounts, Actor
from .push_devices import CLOCK_SKEW as CLOCK_SKEW
from .push_devices import DEVICE_FORMAT as DEVICE_FORMAT
from .push_devices import PushDevices
from .push_fraud import FraudHooks
from .push_requests import ENDED as ENDED
from .push_requests import NonceBook as NonceBook
from .push_requests import Opened as Opened
from .push_requests import PushRequests

CLI = Actor()
HANDOVER_WAIT = 10.0
"""How long a push call waits for a handover of the master's role to finish."""


class PushService:
    def __init__(self, store: Store, config: Config, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        self.devices = PushDevices(store, config, accounts)
        self.fraud = FraudHooks(store, config, accounts)
        self.requests = PushRequests(store, config, self.fraud)
        self.handover_wait = HANDOVER_WAIT

    @property
    def open_per_user(self) -> int:
        return self.requests.open_per_user

    @property
    def min_gap(self) -> float:
        return self.requests.min_gap

    # -- where pushes live -------------------------------------------------------------------

    def is_master(self) -> bool:
        """This node holds the farm's push requests now (the master, or a shared database's
        node); False while it hands the role over, and after."""
        return read_role(self.store).writes

    def require_master(self) -> None:
        """``NotMaster`` with the master's URL unless push requests live here; a handover is
        waited through (``handover_wait`` seconds at most)."""
        deadline = time.monotonic() + self.handover_wait
        role = read_role(self.store)
        while role.handing_over and time.monotonic() <= deadline:
            time.sleep(0.1)
            role = read_role(self.store)
        if not role.writes:
            raise NotMaster(
                f"push requests live at the farm's master; ask it at {role.master_url or '?'}",
                master_url=role.master_url,
            )

    # -- devices -----------------------------------------------------------------------------

    def issue_activation(self, name: str, label: str = "", actor: Actor = CLI) -> ActivationCode:
        """A single-use code (and the URL and QR text carrying it) a device activates with; at
        the master, where the device's activation is decided."""
        self.require_master()
        return self.devices.issue_activation(name, label, actor)

    def activate(
        self,
        code: str,
        alg: str,
        public_key: str,
        label: str = "",
        webpush: dict[str, str] | None = None,
        actor: Actor = CLI,
        unlock: str = "",
    ) -> DeviceActivated:
        """A device's activation with its code (a write, decided at the master: a subordinate
        may not hold a code made a moment ago); ``unlock``: its screen-lock credential."""
        self.require_master()
        return self.devices.activate(code, alg, public_key, label, webpush, actor, unlock)

    def list_devices(self, name: str) -> list[DeviceView]:
        return self.devices.list_devices(name)

    def revoke(self, name: str, device_id: str, actor: Actor = CLI) -> None:
        self.devices.revoke(name, device_id, actor)

    def unblock(self, name: str, actor: Actor = CLI) -> bool:
        """Lift the user's push block (a fraud report's); whether there was one."""
        return self.fraud.unblock(name, actor)

    # -- requests ----------------------------------------------------------------------------

    def open(
        self,
        conn: Connection,
        user: str,
        method_id: str | None,
        *,
        client: str,
        source: str,
        request_id: str,
        now: float,
        numbered: bool = True,
    ) -> tuple[Decision, Opened | None]:
        """A push request for ``user`` (or the same caller's open one), in ``conn``'s
        transaction. Not at the master (a subordinate, or a master handing its role over): a
        pending decision with no request, which the caller opens at the master
        (``farm.push_relay``), as for a subordinate's authenticator."""
        if not role_from(conn).writes:
            return Decision(False, Reason.PENDING, method_id), None
        return self.requests.open(
            conn,
            user,
            method_id,
            client=client,
            source=source,
            request_id=request_id,
            now=now,
            numbered=numbered,
        )

    def outcome(self, push_id: str, client: str | None = None) -> PushOutcome:
        """Where a request stands, asked of the master. ``client``: the SDK caller, who may
        only see its own."""
        self.require_master()
        return self.requests.outcome(push_id, client)

    def outcome_here(self, push_id: str, client: str | None = None) -> PushOutcome:
        """Where a request stands on this node, whatever its role now: for a waiter that
        watches the role itself (``farm.push_relay.wait_outcome``)."""
        return self.requests.outcome(push_id, client)

    def close(self, push_id: str, reason: str) -> bool:
        """End a pending request nobody waits for any more (``PushRequests.close``): False when
        it was answered first. ``NotMaster`` where push requests do not live now (no waiting
        through a handover: the caller is stopping)."""
        if not self.is_master():
            raise NotMaster("push requests live at the farm's master")
        return self.requests.close(push_id, reason)

    def number(self, push_id: str) -> str:
        """The number a pending request shows (to show it again)."""
        return self.requests.number(push_id)

    def poll(self, payload: str, signature: str) -> DevicePoll:
        """A device's signed poll: the device, its key, and the requests waiting for its user."""
        self.require_master()
        return self.requests.poll(payload, signature)

    def answer(
        self, payload: str, signature: str, actor: Actor = CLI, unlock: str = ""
    ) -> PushOutcome:
        """Record a device's signed answer (a fraud report acted on; ``unlock``: the screen
        lock's assertion); a refusal is audited and raised."""
        self.require_master()
        return self.requests.answer(payload, signature, actor, unlock)
