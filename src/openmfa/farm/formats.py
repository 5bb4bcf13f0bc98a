"""The farm's data format: it moves forward only when every node can read the new one."""

from __future__ import annotations

from ..errors import Conflict
from ..store.changes import Change, ChangeWriter
from ..store.database import DATA_FORMAT, Store
from . import membership
from .follower import hello
from .membership import Membership


def finalize(store: Store, m: Membership) -> tuple[int, int]:
    """On the master: move the farm to this release's format; returns (before, after).

    Refuses, naming each node, unless every node answers and reads the new format."""
    current, target = membership.farm_format(store), DATA_FORMAT
    if current >= target:
        return current, current
    cannot: list[str] = []
    for name, url in sorted(membership.members(store).items()):
        if name == store.node_name:
            continue
        said = hello(m, store.node_name, url)
        if said is None:
            cannot.append(f"{name} does not answer at {url}")
        elif said.reads[1] < target:
            cannot.append(f"{name} runs {said.release}, which reads formats up to {said.reads[1]}")
    if cannot:
        raise Conflict(
            f"not finalized: every node must read format {target} first: "
            + "; ".join(cannot)
            + ". Upgrade those nodes, then run finalize again"
        )
    ChangeWriter(store).commit([Change("farm.format", {"format": target})])
    return current, target
