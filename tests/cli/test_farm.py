"""``openmfa farm ...`` through click, in-process, against real data directories: what each
command prints and its exit status. Nothing here needs another node to answer (joining a live
master, promoting and upgrading under load are tests/e2e/test_farm.py's and
test_farm_upgrade.py's)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from openmfa.cli import main
from openmfa.farm.membership import parse_token
from openmfa.store.database import DATA_FORMAT

NOWHERE = "http://127.0.0.1:9"
"""A URL where no node answers (the discard port, closed on a test host)."""


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A node's data directory, as `openmfa init` leaves it."""
    dd = tmp_path / "node"
    assert openmfa("init", "--data-dir", str(dd)).exit_code == 0
    return dd


@pytest.fixture
def master(node: Path) -> tuple[Path, str]:
    """A node that made a farm: (its data directory, the join token it printed)."""
    out = openmfa("farm", "init", "--url", NOWHERE + "/a", "--data-dir", str(node))
    assert out.exit_code == 0, out.output
    token = re.search(r"^  (omfa-join-\S+)$", out.stdout, re.M)
    assert token is not None, out.stdout
    return node, token.group(1)


def test_status_outside_a_farm_says_how_to_make_one(node: Path) -> None:
    r = openmfa("farm", "status", "--data-dir", str(node))
    assert r.exit_code == 1
    assert r.stderr == "error: this node is not in a farm; `openmfa farm init` makes one\n"
    assert r.stdout == ""


def test_init_prints_the_token_once_and_status_lists_the_master(
    master: tuple[Path, str],
) -> None:
    dd, token = master
    farm_id, _ = parse_token(token)
    r = openmfa("farm", "status", "--data-dir", str(dd))
    assert r.exit_code == 0, r.output
    head, columns, row = r.stdout.splitlines()
    assert head == f"farm {farm_id}  epoch 1  master {NOWHERE}/a  data format {DATA_FORMAT}"
    assert columns.split() == ["node", "role", "release", "reads", "position", "lag", "last",
                               "contact", "health"]  # fmt: skip
    assert row.split()[1] == "master" and row.split()[-1] == "ok"
    doc = json.loads(openmfa("farm", "status", "--json", "--data-dir", str(dd)).stdout)
    assert doc["master"] == NOWHERE + "/a" and doc["epoch"] == 1 and doc["components"] == []
    assert [n["role"] for n in doc["nodes"]] == ["master"]
    again = openmfa("farm", "init", "--data-dir", str(dd))
    assert again.exit_code == 1
    assert again.stderr == "error: this node is in a farm already; see `openmfa farm status`\n"


def test_join_with_a_wrong_token_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    dd = tmp_path / "new"
    r = openmfa("farm", "join", NOWHERE, "--token", "omfa-join-nope", "--data-dir", str(dd))
    assert r.exit_code == 1
    assert r.stderr == (
        "error: this is not a farm join token; copy the whole token `openmfa farm init` "
        "printed (it starts with omfa-join-)\n"
    )
    assert not dd.exists()


def test_join_with_another_farms_token_is_refused(master: tuple[Path, str], tmp_path: Path) -> None:
    _, token = master
    other = tmp_path / "other"
    assert openmfa("init", "--data-dir", str(other)).exit_code == 0
    made = openmfa("farm", "init", "--url", NOWHERE + "/b", "--data-dir", str(other))
    farm_id = re.search(r"master of farm (\w+)", made.stdout).group(1)  # type: ignore[union-attr]
    r = openmfa("farm", "join", NOWHERE, "--token", token, "--data-dir", str(other))
    assert r.exit_code == 1
    assert r.stderr == f"error: this node is in farm {farm_id} already; see `openmfa farm status`\n"


def test_rejoining_an_unreachable_master_backs_up_first_and_says_so(
    master: tuple[Path, str],
) -> None:
    dd, token = master
    r = openmfa("farm", "join", NOWHERE, "--token", token, "--data-dir", str(dd))
    assert r.exit_code == 1
    assert re.fullmatch(r"backed up this node's own data as \S+\n", r.stdout), r.stdout
    assert r.stderr.startswith(f"error: could not reach the master at {NOWHERE} (")


def test_finalize_and_promote_say_where_they_run(master: tuple[Path, str]) -> None:
    dd, _ = master
    r = openmfa("farm", "finalize", "--data-dir", str(dd))
    assert r.exit_code == 0
    assert r.stdout == f"the farm is at data format {DATA_FORMAT} already; nothing to do\n"
    r = openmfa("farm", "promote", "node-b", "--force", "--data-dir", str(dd))
    assert r.exit_code == 1
    assert r.stderr.startswith("error: --force promotes the node it runs on (")


def test_finalize_and_promote_outside_a_farm(tmp_path: Path) -> None:
    dd = tmp_path / "alone"
    assert openmfa("init", "--data-dir", str(dd)).exit_code == 0
    r = openmfa("farm", "finalize", "--data-dir", str(dd))
    assert (r.exit_code, r.stderr) == (
        1,
        "error: run `openmfa farm finalize` on the farm's master\n",
    )
    r = openmfa("farm", "promote", "node-b", "--data-dir", str(dd))
    assert (r.exit_code, r.stderr) == (1, "error: this node is not in a farm\n")


def test_upgrade_dry_run_prints_the_plan_and_changes_nothing(
    master: tuple[Path, str], tmp_path: Path
) -> None:
    dd, _ = master
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({"version": "9.9", "files": {}}))
    r = openmfa("farm", "upgrade", "--bundle", str(bundle), "--dry-run", "--data-dir", str(dd))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"plan: upgrade to 9.9 from {bundle} (nothing is changed now)"
    assert any(line.endswith("does not answer: the upgrade would stop here") for line in lines)
    assert lines[-1] == "4. finalize the farm's data format"
    assert "the farm is upgraded" not in r.stdout  # a dry run says only the plan


def test_upgrade_and_rollback_through_haproxy_need_its_socket(
    master: tuple[Path, str], tmp_path: Path
) -> None:
    dd, _ = master
    need = "error: --lb haproxy needs --haproxy-socket (HAProxy's admin socket)\n"
    r = openmfa("farm", "upgrade", "--bundle", str(tmp_path), "--lb", "haproxy",
                "--data-dir", str(dd))  # fmt: skip
    assert (r.exit_code, r.stderr) == (1, need)
    r = openmfa("farm", "rollback", "--lb", "haproxy", "--data-dir", str(dd))
    assert (r.exit_code, r.stderr) == (1, need)


def test_a_rollback_that_cannot_start_says_which_node_does_not_answer(
    master: tuple[Path, str],
) -> None:
    dd, _ = master
    r = openmfa("farm", "rollback", "--data-dir", str(dd))
    assert r.exit_code == 1
    assert r.stdout.startswith("rolling back the farm of 1 nodes and 0 other hosts")
    assert f"does not answer at {NOWHERE}/a; start it" in r.stderr


def test_components_joined_and_forgotten(master: tuple[Path, str], tmp_path: Path) -> None:
    dd, _ = master
    portal = tmp_path / "portal.toml"
    portal.write_text("[portal]\n")
    r = openmfa("farm", "join-component", "--kind", "portal", "--config", str(portal),
                "--name", "web 1")  # fmt: skip
    assert r.exit_code == 1
    assert r.stderr.startswith("error: --name: letters, digits, '.', '_' and '-'")
    r = openmfa("farm", "join-component", "--kind", "mobile", "--config", str(portal),
                "--name", "web-1")  # fmt: skip
    assert r.exit_code == 1
    assert r.stderr == f"error: {portal} has no [mobile] table: is it a mobile.toml?\n"
    r = openmfa("farm", "forget-component", "web-1", "--data-dir", str(dd))
    assert r.exit_code == 1
    assert r.stderr.endswith(" did not answer; run it again when they do\n")
