"""The container image (container/Containerfile, built by scripts/build-image.sh) from a signed
bundle of this tree, run with podman: the node with its data directory as a volume, judged over
the SDK and by radclient; the User Portal and the Mobile App Web Service from the same image; an
older data directory brought forward by the image's ``migrate``; a tampered bundle refused by the
build; and the image's root filesystem served without any container runtime (what would be left
to test where none can run).

What this machine allows, as root (docs/container.md says it in full): containers run with runc
(crun refuses its cgroups: v1 controllers beside a cgroup2 mount that holds one), with ulimits no
higher than the hard limits (root lacks CAP_SYS_RESOURCE; podman's defaults are higher) and the
host's network. The image is built, run and removed in a podman storage of this module's own:
overlay where it mounts (a container starts in a fraction of a second), else vfs (each container
a full copy of the image). The base root filesystem is cached between runs (build-image.sh).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .helpers import OPENMFA, free_port, oathtool, secret_of, stop, wait_for
from .services import free_udp_port
from .test_upgrade import build_wheel

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-image.sh"
UID = 10001
"""The image's user (container/Containerfile)."""
IMAGE = "localhost/openmfa:test-container"
RADIUS_SECRET = "container-gateway-1"
FIXTURE_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
"""alice's TOTP seed in tests/fixtures/format-1 (its README)."""


@dataclass
class Podman:
    """podman with the options this machine needs, in a storage of its own."""

    argv: list[str]
    run_opts: list[str]
    build_opts: list[str]
    why_not: str = ""
    """Why no container runs here ("" when they do)."""
    names: list[str] = field(default_factory=list)
    """The containers started detached (removed at the end)."""
    storages: list[list[str]] = field(default_factory=list)
    """podman with each storage the probe made (emptied and removed at the end)."""

    def __call__(
        self, *args: str, expect: int | None = 0, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=timeout)
        if expect is not None:
            assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done

    def run(
        self, volume: Path, *command: str, detach: bool = False, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        """``podman run`` of the image with ``volume`` as its data directory (chowned to the
        image's user by podman, ``:U``); detached ones are named and removed at the end."""
        name = f"openmfa-test-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        mode = ["-d"] if detach else ["--rm"]
        return self(
            "run", *mode, "--name", name, *self.run_opts,
            "-v", f"{volume}:/var/lib/openmfa:U", IMAGE, *command,
            expect=expect,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        """build-image.sh's environment: this podman, and the build options."""
        return {
            **os.environ,
            "PODMAN": " ".join(self.argv),
            "PODMAN_BUILD_OPTS": " ".join(self.build_opts),
        }


def _limit(which: int, cap: int) -> int:
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def _probe(work: Path) -> Podman:
    """The first storage driver and runtime that run a container of the base image here; the
    errors of the others, word for word, when none does."""
    ulimits = [
        f"--ulimit=nofile={_limit(resource.RLIMIT_NOFILE, 65536)}:"
        f"{_limit(resource.RLIMIT_NOFILE, 65536)}",
        f"--ulimit=nproc={_limit(resource.RLIMIT_NPROC, 4096)}:"
        f"{_limit(resource.RLIMIT_NPROC, 4096)}",
    ]
    run_opts = ["--network", "host", *ulimits]
    failed: list[str] = []
    storages: list[list[str]] = []
    first: Podman | None = None
    for driver in ("overlay", "vfs"):
        storage = work / driver
        argv = ["podman", "--root", str(storage / "root"), "--runroot", str(storage / "run")]
        argv += ["--storage-driver", driver]
        storages.append(argv)
        base = subprocess.run(
            [str(BUILD), "--base"],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PODMAN": " ".join(argv)},
        )
        if base.returncode != 0:
            failed.append(f"{driver}: {base.stderr.strip().splitlines()[-1:]}")
            continue
        name = base.stdout.strip().splitlines()[-1]
        if first is None:
            first = Podman(argv, run_opts, ["--network", "host", "--isolation", "chroot"])
        for runtime in ("crun", "runc"):
            if not shutil.which(runtime):
                continue
            ran = subprocess.run(
                [*argv, "--runtime", runtime, "run", "--rm", *run_opts, name, "true"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if ran.returncode == 0:
                found = Podman([*argv, "--runtime", runtime], run_opts, ["--network", "none"])
                found.storages = storages
                return found
            failed.append(f"{driver} + {runtime}: {ran.stderr.strip()}")
    assert first is not None, f"podman cannot even import the base here: {failed}"
    first.why_not, first.storages = "; ".join(failed), storages
    return first


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    for tool in ("podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/system-deps.sh"
    # A short folder of its own: podman refuses a --runroot longer than 50 characters, and
    # pytest's folders under pytest-xdist are longer than that.
    work = Path(tempfile.mkdtemp(prefix="omfa-podman-", dir="/tmp"))
    found = _probe(work)
    try:
        yield found
    finally:
        for name in found.names:
            found("rm", "-f", "-t", "0", name, expect=None)
        for argv in found.storages:
            subprocess.run([*argv, "rm", "-af", "-t", "0"], capture_output=True, timeout=120)
            subprocess.run([*argv, "rmi", "-af"], capture_output=True, timeout=120)
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            point = line.split()[1]
            if point.startswith(str(work)):  # what podman left mounted, if anything
                subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Release:
    bundle: Path
    public: str
    key_file: Path
    version: str


def _openmfa(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([OPENMFA, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Release:
    """This tree as a signed bundle: installed from its wheel (offline, from the wheelhouse),
    then ``bundle create --sign-key``, as a release manager would."""
    out = tmp_path_factory.mktemp("container-release")
    wheel = build_wheel(ROOT, out)
    version = wheel.name.split("-")[1]
    _openmfa(
        "install", "--root", str(out / "root"), "--from-wheel", str(wheel),
        "--record", str(out / "install.toml"), "--components", "mobile",
    )  # fmt: skip
    key = out / "release.key"
    public = _openmfa("release-key", "create", str(key)).stdout.splitlines()[0]
    key_file = out / "release-key.pub"
    key_file.write_text(public + "\n")
    bundle = out / f"openmfa-{version}.tar.gz"
    record = str(out / "install.toml")
    _openmfa("bundle", "create", str(bundle), "--record", record, "--sign-key", str(key))
    shutil.rmtree(out / "root")
    return Release(bundle, public, key_file, version)


def _build(
    podman: Podman, bundle: Path, key_file: Path, tag: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILD), str(bundle), str(key_file), tag],
        capture_output=True,
        text=True,
        timeout=1200,
        env=podman.env(),
    )


@pytest.fixture(scope="module")
def image(podman: Podman, release: Release) -> str:
    started = time.monotonic()
    built = _build(podman, release.bundle, release.key_file, IMAGE)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    print(f"image built in {time.monotonic() - started:.0f} s with {' '.join(podman.argv)}")
    return IMAGE


def _needs_containers(podman: Podman) -> None:
    if podman.why_not:
        pytest.skip(f"no container runs on this machine: {podman.why_not}")


def test_the_image_holds_the_signed_release_no_data_and_runs_as_a_user(
    podman: Podman, image: str, release: Release
) -> None:
    """What the image says and holds, read without running it: its user, volume, ports and
    entry point; a base imported from mmdebstrap's root filesystem; the release key pinned;
    no bundle, no data directory, no key left in any file of it."""
    (facts,) = json.loads(podman("image", "inspect", image).stdout)
    config = facts["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert set(config["Volumes"]) == {"/var/lib/openmfa"}
    assert set(config["ExposedPorts"]) == {"8480/tcp", "1812/udp", "8500/tcp", "8490/tcp"}
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "/usr/local/bin/openmfa-entrypoint"]
    assert config["Cmd"] == ["node"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == release.version
    assert (
        labels["org.openmfa.bundle.sha256"]
        == hashlib.sha256(release.bundle.read_bytes()).hexdigest()
    )
    assert "mmdebstrap" in facts["History"][0].get("comment", ""), facts["History"][0]
    root = Path(podman("image", "mount", image).stdout.strip())
    try:
        assert release.public in (root / "opt/openmfa/trusted-release-keys").read_text()
        assert os.readlink(root / "opt/openmfa/var") == "/var/lib/openmfa"
        data = root / "var/lib/openmfa"
        assert not list(data.iterdir()) and data.stat().st_uid == UID
        assert (root / "opt/openmfa/current/venv/bin/openmfa").exists()
        leftovers = [p for d in ("tmp", "mnt") for p in (root / d).rglob("*") if p.is_file()]
        assert not leftovers, leftovers
        assert not list(root.glob("**/openmfa.key")) and not list(root.glob("**/bundle.json"))
    finally:
        podman("image", "unmount", image, expect=None)


def test_without_a_container_runtime_its_root_filesystem_serves_as_the_user(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    """The fallback where no container can run (and a check of the image's files anywhere): its
    root filesystem, mounted by podman, runs the entry point's ``node`` with chroot as uid
    10001, in a mount namespace of its own (unshare) with a host folder as the volume."""
    root = Path(podman("image", "mount", image).stdout.strip())
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, UID, UID)
    port = free_port()
    script = (
        f"mount --bind {volume} {root}/var/lib/openmfa && mount --rbind /dev {root}/dev && "
        f"mount -t proc proc {root}/proc && exec chroot --userspec={UID}:{UID} {root} "
        "/usr/bin/env -i PATH=/opt/openmfa/current/venv/bin:/usr/bin:/bin "
        "OPENMFA_DATA_DIR=/var/lib/openmfa PYTHONUNBUFFERED=1 /usr/local/bin/openmfa-entrypoint "
        f"node --listen 127.0.0.1:{port} --radius-listen off"
    )
    log = tmp_path / "node.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}", proc, log), "node in chroot")
        assert "First admin API key" in log.read_text()
        assert {p.stat().st_uid for p in volume.iterdir()} == {UID}
        assert 'listen = "0.0.0.0:8480"' in (volume / "server.toml").read_text()
    finally:
        stop(proc)
        podman("image", "unmount", image, expect=None)
    assert proc.returncode == 0, log.read_text()


def _healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> bool:
    if proc is not None:
        assert proc.poll() is None, log.read_text() if log else proc.returncode
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return bool(httpx.get(url + "/healthz", timeout=2).json()["status"] == "ok")
    return False


@dataclass
class Node:
    name: str
    volume: Path
    url: str
    radius_port: int
    first_log: str


@pytest.fixture(scope="module")
def node(podman: Podman, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """``node`` on an empty host folder as its volume: the first start makes the data
    directory; SDK and RADIUS on free ports of the host's network."""
    _needs_containers(podman)
    volume = tmp_path_factory.mktemp("node-volume")
    http, udp = free_port(), free_udp_port()
    started = podman.run(
        volume, "node", "--listen", f"0.0.0.0:{http}", "--radius-listen", f"0.0.0.0:{udp}",
        detach=True,
    )  # fmt: skip
    name = podman.names[-1]
    url = f"http://127.0.0.1:{http}"

    def up() -> bool:
        state = podman("inspect", name, "--format", "{{.State.Running}}").stdout.strip()
        assert state == "true", podman("logs", name, expect=None).stderr
        return _healthy(url)

    wait_for(up, f"the node's container did not answer /healthz: {started.stdout}", 60)
    logs = podman("logs", name)
    yield Node(name, volume, url, udp, logs.stdout + logs.stderr)
    podman("rm", "-f", "-t", "0", name, expect=None)


def _exec(podman: Podman, node: Node, *args: str) -> str:
    return podman("exec", node.name, "openmfa", *args).stdout


def _radius(port: int, user: str, password: str) -> str:
    proc = subprocess.run(
        ["radclient", "-t", "3", "-r", "2", f"127.0.0.1:{port}", "auth", RADIUS_SECRET],
        input=f'User-Name = "{user}"\nUser-Password = "{password}"\nMessage-Authenticator = 0x00\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout + proc.stderr


def test_node_serves_the_sdk_and_radius_from_its_volume_as_its_user(
    podman: Podman, node: Node
) -> None:
    """A user with a TOTP method and an admin key made with ``podman exec``; the code checked
    over the SDK, the next one over RADIUS (radclient, Access-Accept); the processes run as
    uid 10001 and every file of the volume is theirs."""
    assert "First admin API key" in node.first_log and "omfa_" in node.first_log
    assert 'listen = "0.0.0.0:8480"' in (node.volume / "server.toml").read_text()
    assert 'listen = "0.0.0.0:1812"' in (node.volume / "server.toml").read_text()
    _exec(podman, node, "user", "add", "alice")
    seed = secret_of(_exec(podman, node, "method", "add", "alice", "totp", "--no-qr"))
    token = _exec(podman, node, "apikey", "create", "sdk", "--scope", "admin").strip()
    assert token.startswith("omfa_"), token
    _exec(podman, node, "radius", "client", "add", "gw", "--address", "127.0.0.1/32",
          "--secret", RADIUS_SECRET, "--primary", "none")  # fmt: skip
    answer = httpx.post(
        node.url + "/v1/authenticate",
        json={"user": "alice", "code": oathtool("--totp", "-b", seed)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["accepted"] is True, answer.text
    said = ""

    def accepted() -> bool:  # the running node picks the new RADIUS client up within a second
        nonlocal said
        said = _radius(
            node.radius_port, "alice", oathtool("--totp", "-b", seed, "-N", "+30 seconds")
        )
        return "Received Access-Accept" in said

    wait_for(accepted, f"RADIUS did not accept: {said}", 10)
    pid = podman("inspect", node.name, "--format", "{{.State.Pid}}").stdout.strip()
    processes = [pid, *Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    serving = [p for p in processes if b"serve" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert serving, processes
    for p in processes:
        uids = re.search(r"^Uid:\s+(.*)$", Path(f"/proc/{p}/status").read_text(), re.M)
        assert uids and set(uids.group(1).split()) == {str(UID)}, (p, uids)
    owners = {f.name: f.stat().st_uid for f in node.volume.rglob("*")}
    assert "openmfa.db" in owners and set(owners.values()) == {UID}, owners


def test_portal_and_mobile_service_from_the_same_image(
    podman: Podman, node: Node, tmp_path: Path
) -> None:
    """``portal`` on an empty volume writes portal.toml (listening on 0.0.0.0) and says what is
    missing; with the nodes and a portal key filled in it serves and reaches the node (its
    /healthz says ok). ``mobile`` the same way, on a volume whose mobile.toml is given."""
    portal = tmp_path / "portal"
    portal.mkdir()
    first = podman.run(portal, "portal", expect=1)
    said = first.stdout + first.stderr
    assert "wrote /var/lib/openmfa/portal.toml" in said and "portal.key" in said, said
    config = portal / "portal.toml"
    text = config.read_text()
    assert 'listen = "0.0.0.0:8500"' in text and 'api_key_file = "portal.key"' in text
    assert config.stat().st_uid == UID
    config.write_text(text.replace('"http://127.0.0.1:8480"', f'"{node.url}"'))
    _key_file(portal / "portal.key", _exec(podman, node, "apikey", "create", "portal",
                                             "--scope", "portal"))  # fmt: skip
    port = free_port()
    podman.run(portal, "portal", "--listen", f"0.0.0.0:{port}", detach=True)
    portal_name = podman.names[-1]
    wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/portal"), "portal /healthz ok", 60)
    page = httpx.get(f"http://127.0.0.1:{port}/portal/", follow_redirects=True, timeout=10)
    assert page.status_code == 200 and "<form" in page.text, page.text[:500]

    mobile = tmp_path / "mobile"
    mobile.mkdir()
    shipped = podman.run(mobile, "mobile", "default-config").stdout  # openmfa's own subcommand
    mobile_port = free_port()
    (mobile / "mobile.toml").write_text(
        shipped.replace('"http://127.0.0.1:8480"', f'"{node.url}"')
        .replace('listen = "127.0.0.1:8490"', f'listen = "0.0.0.0:{mobile_port}"')
        .replace('api_key_file = ""', 'api_key_file = "mobile.key"')
    )
    _key_file(mobile / "mobile.key", _exec(podman, node, "apikey", "create", "mobile",
                                             "--scope", "mobile"))  # fmt: skip
    podman.run(mobile, "mobile", detach=True)
    mobile_name = podman.names[-1]
    wait_for(lambda: _healthy(f"http://127.0.0.1:{mobile_port}/mobile"), "mobile /healthz ok", 60)
    for name in (portal_name, mobile_name):
        podman("stop", "-t", "30", name)
        # A clean shutdown, then uvicorn raises SIGTERM again: 143 (the node makes that 0).
        status = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert status in ("0", "143"), status


def _key_file(path: Path, key: str) -> None:
    path.write_text(key.strip() + "\n")
    path.chmod(0o600)
    os.chown(path, UID, UID)


def test_an_older_data_directory_is_refused_until_the_image_migrates_it(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    """A volume of release 0.1.0's data (tests/fixtures/format-1): ``node`` refuses it and
    says to migrate, changing nothing; ``migrate`` (a verified backup first) brings it forward;
    then alice's code from that release is accepted."""
    _needs_containers(podman)
    volume = tmp_path / "old"
    shutil.copytree(ROOT / "tests" / "fixtures" / "format-1", volume)
    (volume / "facts.json").unlink()
    (volume / "openmfa.key").chmod(0o600)
    refused = podman.run(volume, "node", expect=1)
    assert "run `openmfa migrate`" in refused.stderr, refused.stderr
    assert _schema(volume) == "0002"  # as release 0.1.0 left it
    moved = podman.run(volume, "migrate").stdout
    assert "backed up the data file" in moved and "at this release's schema" in moved, moved
    code = oathtool("--totp", "-b", FIXTURE_SEED)
    podman.run(volume, "verify", "alice", code)
    assert _schema(volume) != "0002" and list((volume / "backups").iterdir())


def _schema(data_dir: Path) -> str:
    with contextlib.closing(sqlite3.connect(data_dir / "openmfa.db")) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_the_node_stops_gracefully_on_sigterm(podman: Podman, node: Node) -> None:
    """``podman stop``: tini passes SIGTERM to the node, which ends with status 0."""
    podman("stop", "-t", "30", node.name)
    assert podman("inspect", node.name, "--format", "{{.State.ExitCode}}").stdout.strip() == "0"
    assert "Finished server process" in podman("logs", node.name).stderr


def test_a_tampered_bundle_or_another_key_fails_the_build_naming_why(
    podman: Podman, image: str, release: Release, tmp_path: Path
) -> None:
    """One byte of one wheel changed: the build fails naming the wheel, before anything from
    the bundle ran. A bundle signed by another release key: refused too. No image is made."""
    with tarfile.open(release.bundle) as tar:
        tar.extractall(tmp_path / "t", filter="data")
    (folder,) = (tmp_path / "t").iterdir()
    victim = next((folder / "wheels").glob("openmfa-*.whl"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    tampered = _build(podman, folder, release.key_file, "localhost/openmfa:test-tampered")
    said = tampered.stdout + tampered.stderr
    assert tampered.returncode != 0, said[-3000:]
    assert f"bundle file wheels/{victim.name} is missing or damaged" in said, said[-3000:]
    other = tmp_path / "other.pub"
    theirs = _openmfa("release-key", "create", str(tmp_path / "other.key")).stdout
    other.write_text(theirs.splitlines()[0] + "\n")
    refused = _build(podman, release.bundle, other, "localhost/openmfa:test-other-key")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "which this image does not trust" in said, said[-3000:]
    for tag in ("test-tampered", "test-other-key"):
        assert podman("image", "exists", f"localhost/openmfa:{tag}", expect=None).returncode == 1
