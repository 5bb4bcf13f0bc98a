"""From any recorded release to this one in one command: the upgrade matrix.

Every release releases.toml records is built from its commit, installed (``openmfa install``),
given a user with TOTP and HOTP methods and a RADIUS client, and serves; then one ``openmfa
upgrade`` takes it to this tree (built as the next release), every data-format step in order.
After it: the node runs this release at this release's data format, and the old API key, alice's
codes over the SDK and over RADIUS (judged by radclient), the site's config comment and the
audit log are all there. A downgrade past the format the data now has is refused before
anything changes, naming a release that reads it.

Hosts of components: a component that did not exist in a release (``COMPONENTS_SINCE``) has
no host to upgrade from it — such a host is *installed* on this release, beside the upgraded
node; the table is checked against each release (its CLI has no such command) and the
component of this release is shown serving against the node upgraded from it. Component hosts
of a release that had them are upgraded in tests/e2e/test_mobile_upgrade.py (newer hosts
against an older node) and tests/e2e/test_deployment_upgrade.py (the whole deployment).
The farm's row (from 0.2.0, the first release with a farm) is tests/e2e/test_farm_upgrade.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from openmfa.install.compat import KNOWN, version_key
from openmfa.store.formats import DATA_FORMAT

from .helpers import OPENMFA, free_port, start_service, stop
from .test_farm_upgrade import FIRST_FARM
from .test_upgrade import NEW, RELEASES, ROOT, Site, build_wheel, recorded_release, serving_site

COMPONENTS_SINCE = {"portal": "0.3.0", "mobile": "0.3.0", "adapter": "0.3.0"}
"""The first release each component beside the nodes came with."""

MATRIX = [
    (
        r["version"],
        kind,
        "upgraded" if version_key(since) <= version_key(r["version"]) else "installed",
    )
    for r in RELEASES
    for kind, since in COMPONENTS_SINCE.items()
]
"""(release, component, how a host of it gets to this release)."""


@pytest.fixture(scope="module")
def head_wheel(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("head"), NEW)


@pytest.mark.parametrize(
    "release", [r["version"] for r in RELEASES[:-1] if r["version"] != FIRST_FARM]
)
def test_any_release_upgrades_to_this_one_in_one_step(
    release: str, head_wheel: Path, tmp_path: Path
) -> None:
    """Every recorded release but the newest, whose upgrade to this tree (and back) is
    ``test_upgrade.py``'s own ``test_upgrade_then_rollback``, and the first with a farm, whose
    nodes ``test_farm_upgrade.py`` upgrades to this tree, one ``openmfa upgrade`` each, under
    load (its data at format 1, as the first release's here)."""
    wheel = recorded_release(tmp_path / "built", release)
    with serving_site(tmp_path, wheel) as site:
        assert site.version() == release
        before = httpx.get(site.url + "/version", timeout=5).json()
        old_format = before.get("data_format", 1)
        out = site.upgrade("--from-wheel", str(head_wheel)).stdout
        assert site.version() == NEW, out
        after = httpx.get(site.url + "/version", timeout=5).json()
        assert after["data_format"] == DATA_FORMAT, out
        if old_format < DATA_FORMAT:
            assert f"data format {old_format} -> {DATA_FORMAT}" in out, out
        site.check_everything_is_there()
        _components_of(release, site, tmp_path)
        if release == RELEASES[0]["version"]:
            _downgrade_past_the_format_is_refused(site, wheel)
            # ... and to a release this host never ran: installed beside to be asked, refused,
            # and removed again (no backup taken, no journal).
            second = RELEASES[1]["version"]
            backups = sorted(p.name for p in (site.root / "backups").iterdir())
            assert backups  # the upgrade's own backup is there
            _downgrade_past_the_format_is_refused(
                site, recorded_release(tmp_path / "built", second)
            )
            assert not (site.root / "releases" / second).exists()
            assert sorted(p.name for p in (site.root / "backups").iterdir()) == backups


def _components_of(release: str, site: Site, tmp_path: Path) -> None:
    """Each component the release lacked: its CLI has no such command (so no host of it can
    exist to be upgraded); this release's portal, installed beside, serves against the node."""
    old_cli = site.root / "releases" / release / "venv" / "bin" / "openmfa"
    missing = [
        k for k, since in COMPONENTS_SINCE.items() if version_key(release) < version_key(since)
    ]
    for kind in missing:
        proc = subprocess.run([str(old_cli), kind, "--help"], capture_output=True, text=True)
        assert proc.returncode != 0, (kind, proc.stdout)
        assert (release, kind, "installed") in MATRIX
    if "portal" not in missing:
        return
    key = site.run(
        OPENMFA, "apikey", "create", "web", "--scope", "portal", "--data-dir", str(site.var)
    ).stdout.split()[-1]
    web = tmp_path / "web"
    web.mkdir()
    (web / "portal.key").write_text(key + "\n")
    (web / "portal.key").chmod(0o600)
    port = free_port()
    (web / "portal.toml").write_text(
        f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["{site.url}"]\n'
        'api_key_file = "portal.key"\n'
    )
    portal = start_service(
        ["portal", "serve", "--config", str(web / "portal.toml")],
        f"http://127.0.0.1:{port}/portal/healthz",
        web / "portal.log",
    )
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/portal/healthz", timeout=5).json()
        assert health["status"] == "ok", health
        page = httpx.get(f"http://127.0.0.1:{port}/portal/", timeout=5, follow_redirects=True)
        assert page.status_code == 200 and "<form" in page.text
    finally:
        stop(portal)


def _downgrade_past_the_format_is_refused(site: Site, wheel: Path) -> None:
    """Back to the first release with ``upgrade``, past the format the data now has: refused
    before anything changes, naming a release that reads it; the node serves on."""
    journal = site.root / "upgrade-journal.json"
    proc = site.upgrade("--from-wheel", str(wheel), expect=1)
    said = proc.stdout + proc.stderr
    assert f"data here is at format {DATA_FORMAT}" in said, said
    readers = [k.version for k in KNOWN if k.reads[1] >= DATA_FORMAT] + [NEW]
    assert (
        f"choose {readers[0]} or later" in said
        and "serves on, nothing on this host was changed" in said
    ), said
    assert not journal.exists()
    assert site.version() == NEW
    site.check_everything_is_there()
