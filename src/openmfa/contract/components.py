"""What components (portal, mobile service, adapter hosts) and the node say to each other, and
the error body."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

COMPONENT_KINDS = ("portal", "mobile", "adapter", "console")
OrderId = Annotated[str, msgspec.Meta(max_length=64)]


class ComponentOrder(msgspec.Struct, kw_only=True):
    """What ``farm upgrade``/``farm rollback`` asks of a component; every node holds it and
    hands it out with the answer to the component's next report."""

    id: OrderId
    action: Literal["upgrade", "rollback"]
    """``upgrade``: ``openmfa upgrade --from-bundle BUNDLE`` on its host; ``rollback``:
    ``openmfa rollback``."""
    target: Annotated[str, msgspec.Meta(max_length=64)]
    """The release the component runs when the order is done."""
    bundle: Annotated[str, msgspec.Meta(max_length=4096)] = ""


class ComponentReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a portal, mobile-service, adapter or console host says of itself every few seconds
    (``POST /v1/components/report``, with its own key: the key's scope is its kind)."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    kind: Literal["portal", "mobile", "adapter", "console"]
    url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""
    release: Annotated[str, msgspec.Meta(max_length=64)]
    sdk_versions: Annotated[list[int], msgspec.Meta(max_length=16)]
    health: Annotated[str, msgspec.Meta(max_length=500)] = "ok"
    upgrading: bool = False
    rollback_to: Annotated[str, msgspec.Meta(max_length=64)] = ""
    boot: OrderId = ""
    busy: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Requests under way that a drained host lets finish first (a portal: sign-ins)."""
    """Changes each time the component's process starts."""
    started: Annotated[list[OrderId], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )
    """The ids of the orders this component has started (each is started once)."""


class ComponentReply(msgspec.Struct, kw_only=True):
    order: ComponentOrder | None = None
    """Something to do (an upgrade, a rollback), or nothing."""
    every: float = 10.0
    """Seconds until the next report."""


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    request_id: str = ""
    master_url: str | UnsetType = UNSET
    """With ``not_master``: the farm master's SDK URL, where writes go."""
