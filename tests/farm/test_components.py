"""The node's board of the hosts beside it: what a report leaves, what survives a restart of
the node, the order handed back, the newest word across nodes, the plan's lines."""

from __future__ import annotations

import time
from pathlib import Path

from openmfa.farm.components import (
    REPORT_EVERY,
    REPORT_EVERY_DURING,
    ROLLOUT_QUIET,
    SILENT_AFTER,
    ComponentBoard,
    answering,
    merged,
)
from openmfa.farm.rollout import plan_lines, rollout_key
from openmfa.sdk.models import ComponentOrder, ComponentReport


def report(name: str, kind: str = "portal", release: str = "1.0.0") -> ComponentReport:
    return ComponentReport(
        name=name, kind=kind, release=release, sdk_versions=[1], host="h", url="http://h/p"
    )  # type: ignore[arg-type]


def test_reports_orders_and_a_restarted_node(tmp_path: Path) -> None:
    board = ComponentBoard(tmp_path, "node-a")
    assert board.report(report("web-1"), now=100.0) is None
    order = ComponentOrder(id="o1", action="upgrade", target="1.0.1", bundle="/srv/b.tar.gz")
    board.order("web-1", order)
    assert board.report(report("web-1"), now=105.0) == order  # handed out with each answer
    board.report(report("dmz-1", "mobile"), now=106.0)
    again = ComponentBoard(tmp_path, "node-a")  # the node restarted: it still lists both
    assert [c.name for c in again.seen()] == ["dmz-1", "web-1"]
    assert again.report(report("web-1"), now=200.0) is None  # orders live in memory only
    seen = {c.name: c for c in again.seen()}
    assert seen["web-1"].node == "node-a" and seen["web-1"].contact == 200.0
    assert not answering(seen["dmz-1"], now=106.0 + SILENT_AFTER + 1)
    assert again.forget("dmz-1") and not again.forget("dmz-1")
    assert [c.name for c in ComponentBoard(tmp_path, "node-a").seen()] == ["web-1"]


def test_components_report_every_second_while_the_farm_moves_them(tmp_path: Path) -> None:
    board = ComponentBoard(tmp_path, "node-a")
    assert board.every() == REPORT_EVERY  # nothing under way
    order = ComponentOrder(id="o1", action="upgrade", target="1.0.1", bundle="/srv/b.tar.gz")
    board.order("web-1", order)
    assert board.every() == REPORT_EVERY_DURING < REPORT_EVERY
    board.order("web-1", None)  # cleared: the next host's turn comes soon
    assert board.every() == REPORT_EVERY_DURING
    later = time.monotonic() + ROLLOUT_QUIET + 1
    assert board.every(now=later) == REPORT_EVERY  # quiet again


def test_a_broken_board_file_is_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "components.json").write_text("{not json")
    assert ComponentBoard(tmp_path, "node-a").seen() == []


def test_the_newest_word_on_each_component_and_the_plan(tmp_path: Path) -> None:
    a, b = ComponentBoard(tmp_path / "a", "node-a"), ComponentBoard(tmp_path / "b", "node-b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a.report(report("web-1", release="1.0.0"), now=10.0)
    b.report(report("web-1", release="1.0.1"), now=20.0)  # heard later, on another node
    b.report(report("dmz-1", "mobile", release="1.0.0"), now=20.0)
    seen = merged([a.seen(), b.seen()])
    assert [(c.name, c.release, c.node) for c in sorted(seen, key=rollout_key)] == [
        ("dmz-1", "1.0.0", "node-b"),
        ("web-1", "1.0.1", "node-b"),
    ]
    lines = plan_lines(sorted(seen, key=rollout_key), "1.0.1")
    assert "dmz-1" in lines[0] and "1.0.0 -> 1.0.1" in lines[0]
    assert "web-1" in lines[1] and "runs 1.0.1 already" in lines[1]
    back = plan_lines(sorted(seen, key=rollout_key), None)  # a rollback: the reverse order
    assert "web-1" in back[0] and "nothing to roll back" in back[0]
