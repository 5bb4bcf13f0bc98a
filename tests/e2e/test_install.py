"""`openmfa install` and `openmfa bundle` with a real wheel of this tree, real environments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import OPENMFA

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([OPENMFA, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("openmfa-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("install")
    run(
        "install",
        "--root",
        str(base / "root"),
        "--from-wheel",
        str(wheel),
        "--record",
        str(base / "install.toml"),
        "--systemd-dir",
        str(base / "systemd"),
    )
    yield base


def test_install_from_a_wheel(installed: Path) -> None:
    root = installed / "root"
    record = tomllib.loads((installed / "install.toml").read_text())
    assert record["root"] == str(root) and record["components"] == ["server"]
    version = record["version"]
    assert (root / "current").resolve() == (root / "releases" / version).resolve()
    own = root / "current" / "venv" / "bin" / "openmfa"
    assert version in subprocess.run([str(own), "--version"], capture_output=True, text=True).stdout
    assert (root / "var" / "openmfa.db").exists()
    assert (root / "var" / "openmfa.key").stat().st_mode & 0o777 == 0o600
    assert f'dir = "{root}/backups"' in (root / "var" / "server.toml").read_text()
    users = subprocess.run(
        [str(own), "user", "add", "alice", "--data-dir", str(root / "var")],
        capture_output=True,
        text=True,
    )
    assert users.returncode == 0
    unit = (installed / "systemd" / "openmfa-server.service").read_text()
    assert f"ExecStart={root}/current/venv/bin/openmfa serve --data-dir {root}/var" in unit


def test_offline_bundle_installs_without_an_index(installed: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "openmfa.tar.gz"
    run("bundle", "create", str(bundle), "--record", str(installed / "install.toml"))
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert any(n.endswith("bundle.json") for n in names)
    assert any("/wheels/openmfa-" in n for n in names) and any(
        "/wheels/SQLAlchemy" in n or "/wheels/sqlalchemy" in n for n in names
    )
    out = run(
        "install",
        "--root",
        str(tmp_path / "mobile-host"),
        "--from-bundle",
        str(bundle),
        "--components",
        "mobile,console",
        "--record",
        str(tmp_path / "mobile.toml"),
        "--systemd-dir",
        str(tmp_path / "systemd"),
    ).stdout
    assert "installed OpenMFA" in out
    record = tomllib.loads((tmp_path / "mobile.toml").read_text())
    assert record["components"] == ["mobile", "console"]
    # A mobile-service and console host: their settings, no data file and no key to one.
    var = tmp_path / "mobile-host" / "var"
    assert (var / "mobile.toml").exists() and not list(var.glob("openmfa.*"))
    assert f"mobile serve --config {var}/mobile.toml" in out
    assert f"console serve --config {var}/console.toml" in out and "--scope console" in out
    assert 'listen = "127.0.0.1:8600"' in (var / "console.toml").read_text()
    unit = (tmp_path / "systemd" / "openmfa-mobile.service").read_text()
    assert f"ExecStart={tmp_path}/mobile-host/current/venv/bin/openmfa mobile serve" in unit
    unit = (tmp_path / "systemd" / "openmfa-console.service").read_text()
    assert f"ExecStart={tmp_path}/mobile-host/current/venv/bin/openmfa console serve" in unit
    assert not (tmp_path / "systemd" / "openmfa-server.service").exists()


def test_damaged_bundle_is_refused_and_nothing_installed(installed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    run("bundle", "create", str(folder), "--record", str(installed / "install.toml"))
    victim = next((folder / "wheels").glob("openmfa-*.whl"))
    victim.write_bytes(victim.read_bytes()[:-10])
    err = run(
        "install",
        "--root",
        str(tmp_path / "r"),
        "--from-bundle",
        str(folder),
        "--record",
        str(tmp_path / "r.toml"),
        expect=1,
    ).stderr
    assert "missing or damaged" in err and victim.name in err
    assert not (tmp_path / "r" / "current").exists() and not (tmp_path / "r.toml").exists()


def test_rerun_after_a_crash_rebuilds_the_half_built_release(
    installed: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "b"
    run("bundle", "create", str(bundle), "--record", str(installed / "install.toml"))
    version = tomllib.loads((installed / "install.toml").read_text())["version"]
    half = tmp_path / "root" / "releases" / version
    (half / "venv").mkdir(parents=True)  # as a SIGKILL mid-install would leave it
    run(
        "install",
        "--root",
        str(tmp_path / "root"),
        "--from-bundle",
        str(bundle),
        "--record",
        str(tmp_path / "rec.toml"),
    )
    assert (half / "COMPLETE").exists() and (half / "venv" / "bin" / "openmfa").exists()


def test_a_second_root_for_the_same_record_is_refused(
    installed: Path, wheel: Path, tmp_path: Path
) -> None:
    err = run(
        "install",
        "--root",
        str(tmp_path / "elsewhere"),
        "--from-wheel",
        str(wheel),
        "--record",
        str(installed / "install.toml"),
        expect=1,
    ).stderr
    assert "openmfa upgrade" in err


def test_unwritable_root_is_explained(wheel: Path, tmp_path: Path) -> None:
    err = run(
        "install",
        "--root",
        "/proc/openmfa-cannot-be-here",
        "--from-wheel",
        str(wheel),
        "--record",
        str(tmp_path / "r.toml"),
        expect=1,
    ).stderr
    assert "is not writable" in err and "--root" in err
    assert not (tmp_path / "r.toml").exists()


def test_bundle_needs_a_record(tmp_path: Path) -> None:
    err = run(
        "bundle", "create", str(tmp_path / "x"), "--record", str(tmp_path / "none.toml"), expect=1
    ).stderr
    assert "no install record" in err
    shutil.rmtree(tmp_path / "x", ignore_errors=True)


def test_a_host_that_pins_a_release_key_takes_only_bundles_it_signed(
    installed: Path, tmp_path: Path
) -> None:
    """`release-key create`, `release-key trust` on a host before any bundle arrives, `bundle
    create --sign-key`: the signed bundle installs; one byte of one wheel changed, the signature
    changed, another key's signature, or no signature at all is refused before anything on the
    host changes, naming the file."""
    key = tmp_path / "release.key"
    made = run("release-key", "create", str(key)).stdout.splitlines()
    public = made[0]
    assert public.startswith("openmfa-release-key-v1:") and key.stat().st_mode & 0o777 == 0o600
    assert run("release-key", "create", str(key), expect=1).stderr  # made once, never replaced
    host = tmp_path / "host"
    assert "now trusted" in run("release-key", "trust", public, "--root", str(host)).stdout
    assert public in run("release-key", "list", "--root", str(host)).stdout
    record = str(installed / "install.toml")
    signed = tmp_path / "signed"
    said = run("bundle", "create", str(signed), "--record", record, "--sign-key", str(key)).stdout
    assert "signed by release key" in said
    bom = json.loads((signed / "sbom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    wheels = {p.name for p in (signed / "wheels").iterdir()}
    assert {c["properties"][0]["value"] for c in bom["components"]} == {
        f"wheels/{w}" for w in wheels
    }

    def refused(bundle: Path) -> str:
        err = run(
            "install", "--root", str(host), "--from-bundle", str(bundle),
            "--record", str(tmp_path / "host.toml"), expect=1,
        ).stderr  # fmt: skip
        assert not (host / "current").exists() and not (host / "releases").exists()
        assert not (tmp_path / "host.toml").exists()
        return err

    def copy(name: str) -> Path:
        out = tmp_path / name
        shutil.copytree(signed, out)
        return out

    unsigned = tmp_path / "unsigned"
    run("bundle", "create", str(unsigned), "--record", record)
    assert "bundle.sig is missing" in refused(unsigned)
    tampered = copy("tampered")
    victim = next((tampered / "wheels").glob("openmfa-*.whl"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1  # one byte of one wheel
    victim.write_bytes(bytes(data))
    assert f"bundle file wheels/{victim.name} is missing or damaged" in refused(tampered)
    forged = copy("forged")
    manifest = json.loads((forged / "bundle.json").read_text())
    manifest["files"][victim.name] = "0" * 64  # the manifest changed to match a new wheel
    (forged / "bundle.json").write_text(json.dumps(manifest))
    assert "bundle.sig does not match bundle.json" in refused(forged)
    other_key = tmp_path / "other.key"
    run("release-key", "create", str(other_key))
    theirs = tmp_path / "theirs"
    run("bundle", "create", str(theirs), "--record", record, "--sign-key", str(other_key))
    assert "which this host does not trust" in refused(theirs)
    extra = copy("extra")
    shutil.copy(victim, extra / "wheels" / "pip-99.0-py3-none-any.whl")
    assert "wheels/pip-99.0-py3-none-any.whl is not in bundle.json" in refused(extra)
    out = run(
        "install", "--root", str(host), "--from-bundle", str(signed), "--components", "mobile",
        "--record", str(tmp_path / "host.toml"),
    ).stdout  # fmt: skip
    assert "installed OpenMFA" in out and (host / "current").exists()
