"""A node's farm endpoints, master's and agent's, as one set of routes."""

from __future__ import annotations

from starlette.routing import Route

from ..core.lockout import LockoutPolicy
from ..node.push import PushService
from ..node.push_hub import PushHub
from ..store.database import Store
from .agent_routes import AgentEndpoints
from .components import ComponentBoard
from .master_routes import MasterEndpoints
from .push_relay import MasterPushRoutes
from .routes import RadiusActivity
from .signing import SignatureCheck
from .state_push import StateJournal


class FarmEndpoints:
    def __init__(
        self,
        store: Store,
        lockout: LockoutPolicy,
        board: ComponentBoard,
        push: PushService,
        hub: PushHub,
        radius: RadiusActivity | None,
    ) -> None:
        """``push``, ``hub``: the node's push requests and their waiters (the master answers
        its subordinates' pushes with them); ``radius``: the node's RADIUS server, if on."""
        checks: dict[bytes, SignatureCheck] = {}  # one nonce memory for every farm route
        self.journal = StateJournal()
        self.master = MasterEndpoints(store, checks, lockout, self.journal)
        self.agent = AgentEndpoints(store, checks, board, radius)
        self.push = MasterPushRoutes(self.master, push, hub)

    def routes(self) -> list[Route]:
        return [*self.master.routes(), *self.push.routes(), *self.agent.routes()]
