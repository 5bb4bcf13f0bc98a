"""A node's farm endpoints, master's and agent's, as one set of routes."""

from __future__ import annotations

from starlette.routing import Route

from ..core.lockout import LockoutPolicy
from ..store.database import Store
from .agent_routes import AgentEndpoints
from .components import ComponentBoard
from .master_routes import MasterEndpoints
from .push_relay import MasterPushRoutes
from .routes import RadiusActivity
from .signing import SignatureCheck
from .state_push import StateJournal


class FarmEndpoints:
    def __init__(self, store: Store, lockout: LockoutPolicy, board: ComponentBoard) -> None:
        checks: dict[bytes, SignatureCheck] = {}  # one nonce memory for every farm route
        self.journal = StateJournal()
        self.master = MasterEndpoints(store, checks, lockout, self.journal)
        self.agent = AgentEndpoints(store, checks, board)
        self.push = MasterPushRoutes(self.master)

    @property
    def radius(self) -> RadiusActivity | None:
        return self.agent.radius

    @radius.setter
    def radius(self, radius: RadiusActivity | None) -> None:
        self.agent.radius = radius

    def routes(self) -> list[Route]:
        return [*self.master.routes(), *self.push.routes(), *self.agent.routes()]
