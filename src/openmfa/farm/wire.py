"""What nodes of a farm say to each other, typed once for both ends.

``Hello`` is the answer of ``GET /v1/farm/hello``: the node's role and position, its release and
the data formats it reads, and what a rolling upgrade needs to know. Fields added after 0.2.0
have defaults, so an older node's answer decodes too; unknown fields (a newer node's) are
ignored.
"""

from __future__ import annotations

import msgspec

from ..contract import ComponentOrder

__all__ = ["ComponentOrder", "ComponentSeen", "Hello", "RadiusState", "RollbackPlan"]


class RadiusState(msgspec.Struct, kw_only=True):
    """The node's RADIUS server, as the rolling upgrade drains it."""

    listen: str = ""
    """Where it listens (reported from 0.2.1 on; "" when unknown)."""
    draining: bool = False
    open_challenges: int = 0


class RollbackPlan(msgspec.Struct, kw_only=True):
    """What ``openmfa rollback`` would do on the node."""

    to: str
    """The release it would go back to."""
    format: int
    """The data format of the backup taken before the upgrade."""


class Hello(msgspec.Struct, kw_only=True):
    name: str
    role: str
    epoch: int
    master_url: str
    url: str
    position: int
    release: str
    reads: list[int]
    """The data formats the node's release reads: [oldest, newest]."""
    farm_format: int = 0
    data_format: int = 0
    audit_pending: bool = False
    rollback: RollbackPlan | None = None
    upgrading: bool = False
    """``openmfa upgrade`` is under way there (it may still verify and roll back)."""
    radius: RadiusState | None = None
    components: list[ComponentSeen] = msgspec.field(default_factory=list)
    """The portal, mobile and adapter hosts this node heard from (from 0.3 on)."""


class ComponentSeen(msgspec.Struct, kw_only=True):
    """A portal, mobile-service or adapter host as the nodes last heard from it
    (``POST /v1/components/report``)."""

    name: str
    kind: str
    url: str
    host: str
    release: str
    sdk_versions: list[int]
    health: str
    """``ok``: it reaches the nodes and serves; otherwise what it says is wrong."""
    contact: float
    """When a node last heard from it (that node's clock)."""
    node: str = ""
    """The node that heard it."""
    upgrading: bool = False
    rollback_to: str = ""
    boot: str = ""
    busy: int = 0
    started: list[str] = msgspec.field(default_factory=list)
    """The orders it has started (their ids)."""
