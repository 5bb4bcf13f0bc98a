"""Which release may follow which (install/compat.py): the rules, on the releases there are."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from openmfa.install.compat import KNOWN, UPGRADES_FROM, Facts, Known, refusal, version_key
from openmfa.store.database import READS_FORMATS

ROOT = Path(__file__).resolve().parents[2]
RECORDED = tomllib.loads((ROOT / "releases.toml").read_text())["release"]
HEAD = Facts("0.3.1", READS_FORMATS, UPGRADES_FROM, KNOWN)


def test_the_table_is_releases_toml() -> None:
    assert [(k.version, k.data_format, list(k.reads)) for k in KNOWN] == [
        (r["version"], r["data_format"], r["reads_formats"]) for r in RECORDED
    ]


def test_versions_order_as_numbers() -> None:
    assert version_key("0.10.0") > version_key("0.9.3") > version_key("0.3.1.dev2+g1234")
    assert version_key("1.0.0") == version_key("1.0") == (1, 0, 0)


@pytest.mark.parametrize("release", RECORDED, ids=[r["version"] for r in RECORDED])
def test_every_recorded_release_upgrades_to_this_one_in_one_step(
    release: dict[str, object],
) -> None:
    assert refusal(str(release["version"]), int(str(release["data_format"])), HEAD) is None


def test_a_downgrade_past_the_data_format_is_refused_naming_a_release_that_reads_it() -> None:
    old = Facts("0.2.0", (1, 1))  # a release from before compat.py: it says only what it reads
    released = KNOWN[-1].data_format  # the newest format a recorded release reads
    why = refusal("0.3.1", released, old)
    assert why is not None
    assert f"format {released}" in why and "reads formats 1 to 1" in why
    assert "choose 0.3.0 or later" in why and "openmfa rollback" in why
    # Where the data has not moved yet (a farm not finalized), going back is allowed.
    assert refusal("0.3.1", 1, old) is None


def test_data_no_recorded_release_reads_names_the_release_the_host_runs() -> None:
    """Data the running release moved past every recorded one (its own new format): the
    release that reads it is the one the host runs (not in any table before it is released),
    and the refusal names it."""
    newest = READS_FORMATS[1]
    why = refusal("0.3.2", newest, Facts("0.1.0", (1, 1)))
    readers = [k.version for k in KNOWN if k.reads[1] >= newest] or ["0.3.2"]
    assert why is not None and f"choose {readers[0]} or later" in why, why


def test_data_too_old_for_the_target_names_the_release_to_go_through() -> None:
    later = (*KNOWN, Known("0.9.0", 9, (1, 9)))
    target = Facts("1.0.0", (7, 10), "0.1.0", later)
    why = refusal("0.2.0", 1, target)
    assert why is not None and "upgrade to 0.9.0 first" in why
    assert "moves the data to 9" in why and "then to 1.0.0" in why
    # No release known that bridges: still refused, said plainly.
    bare = refusal("0.2.0", 1, Facts("1.0.0", (7, 10), None, ()))
    assert bare is not None and "through an earlier release" in bare


def test_a_release_that_no_longer_upgrades_from_this_one_names_the_release_to_go_through() -> None:
    target = Facts("2.0.0", (1, 12), "1.0.0", KNOWN)
    why = refusal("0.3.0", 6, target)
    assert why == (
        "release 2.0.0 upgrades from 1.0.0 or later, and this host runs 0.3.0: "
        "upgrade to 1.0.0 first, then to 2.0.0"
    )
    assert refusal("1.0.0", 6, target) is None


def test_a_host_without_data_is_judged_by_its_release_alone() -> None:
    assert refusal("0.1.0", None, HEAD) is None


def test_a_farm_whose_data_has_not_moved_is_told_to_finalize_not_to_go_back() -> None:
    """0.3.1 runs, its farm not finalized (data at format 1); a release reading from 3 on is
    not reached by going back to 0.3.0: the data moves forward first."""
    known = (*KNOWN, Known("0.3.1", 6, (1, 6)))
    why = refusal("0.3.1", 1, Facts("1.0.0", (3, 10), "0.1.0", known))
    assert why is not None and "openmfa farm finalize" in why and "0.3.0" not in why


def test_only_releases_after_the_running_one_are_named_to_go_through() -> None:
    later = (*KNOWN, Known("0.4.0", 7, (1, 7)), Known("0.5.0", 8, (7, 8)))
    why = refusal("0.2.0", 1, Facts("0.6.0", (7, 9), "0.1.0", later))
    assert why is not None and "upgrade to 0.4.0 first" in why
