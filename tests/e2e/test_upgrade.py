"""In-place upgrade between two real releases: the newest one releases.toml records (built from
its commit) and this tree as the next version, with a real server, radclient and a SIGKILL at
every step."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openmfa.install.upgrader import CRASH_HOOK, STEPS

from .helpers import OPENMFA, built_once, free_port, oathtool
from .services import free_udp_port

ROOT = Path(__file__).resolve().parents[2]
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
OLD = tomllib.loads((ROOT / "releases.toml").read_text())["release"][-1]["version"]
"""The previous release: the newest one releases.toml records."""
NEW = ".".join([*OLD.split(".")[:2], str(int(OLD.split(".")[2]) + 1)])
"""This tree, built as the release after it."""
HOTP_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def build_wheel(tree: Path, out: Path, version: str | None = None) -> Path:
    """This tree as a wheel of ``version``: built once a run, used by every module that needs
    it (each build is a copy of the tree and a setuptools run)."""
    return built_once(
        f"wheel-{tree.name}-{version}", out, lambda where: _build_wheel(tree, where, version)
    )


def _build_wheel(tree: Path, out: Path, version: str | None = None) -> Path:
    if version is not None:
        copy = out / f"tree-{version}"
        shutil.copytree(
            tree,
            copy,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "var", "*.egg-info", "__pycache__", ".mypy_cache", "tests"
            ),
        )
        py = copy / "pyproject.toml"
        py.write_text(
            re.sub(r'^version = ".*"$', f'version = "{version}"', py.read_text(), flags=re.M)
        )
        tree = copy
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"openmfa-{version or '*'}-*.whl"))


@dataclass
class Site:
    root: Path
    record: Path
    var: Path
    url: str
    radius_port: int
    token: str
    counter: int = 0
    mark: int = 0
    """The token's counter when the last upgrade began: a rollback restores the data of that
    moment, so the codes used since are valid again and the test goes back to this value."""

    def next_code(self) -> str:
        """The next code of alice's hardware token (HOTP: each one is accepted once)."""
        code = oathtool("--hotp", "-b", "-c", str(self.counter), HOTP_SEED)
        self.counter += 1
        return code

    def old(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        return self.run(
            str(self.root / "current" / "venv" / "bin" / "openmfa"), *args, expect=expect
        )

    @staticmethod
    def run(*cmd: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600)
        assert proc.returncode == expect, (cmd, proc.stdout, proc.stderr)
        return proc

    def rollback(self) -> str:
        out = self.run(OPENMFA, "rollback", "--yes", "--record", str(self.record)).stdout
        self.counter = self.mark
        return out

    def upgrade(
        self, *args: str, expect: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if not (self.root / "upgrade-journal.json").exists():
            self.mark = self.counter
        proc = subprocess.run(
            [OPENMFA, "upgrade", "--yes", "--record", str(self.record), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **(env or {})},
        )
        assert expect is None or proc.returncode == expect, (proc.stdout, proc.stderr)  # type: ignore[comparison-overlap]
        return proc

    def version(self) -> str:
        return str(httpx.get(self.url + "/version", timeout=5).json()["release"])

    def server_pid(self) -> int | None:
        text = (
            (self.var / "openmfa.lock").read_text().strip()
            if (self.var / "openmfa.lock").exists()
            else ""
        )
        if text.isdigit() and Path(f"/proc/{text}").exists():
            return int(text)
        return None

    def check_everything_is_there(self) -> None:
        assert "alice" in self.old("user", "list", "--data-dir", str(self.var)).stdout
        # The old admin API key still works, and alice's token still verifies over the SDK ...
        r = httpx.post(
            self.url + "/v1/authenticate",
            timeout=10,
            headers={"Authorization": f"Bearer {self.token}"},
            json={"user": "alice", "code": self.next_code()},
        )
        assert r.status_code == 200 and r.json()["accepted"] is True, r.text
        # ... and over RADIUS, judged by radclient.
        reply = subprocess.run(
            [
                "radclient",
                "-t",
                "2",
                "-r",
                "2",
                f"127.0.0.1:{self.radius_port}",
                "auth",
                "radius-secret-1",
            ],
            capture_output=True,
            text=True,
            input=f'User-Name = "alice"\nUser-Password = "{self.next_code()}"\n'
            "Message-Authenticator = 0x00\n",
        )
        assert "Received Access-Accept" in reply.stdout, reply.stdout + reply.stderr
        cfg = (self.var / "server.toml").read_text()
        assert "lockout_threshold = 7  # agreed with security, 2026" in cfg
        audit = self.old("audit", "--user", "alice", "--data-dir", str(self.var)).stdout
        assert "method.add" in audit


RELEASES: list[dict[str, str]] = tomllib.loads((ROOT / "releases.toml").read_text())["release"]
"""Every release releases.toml records, oldest first."""


def recorded_release(out: Path, version: str = OLD) -> Path:
    """A release releases.toml records (the newest by default), built from the commit it
    records (once a session)."""
    (release,) = [r for r in RELEASES if r["version"] == version]
    return built_once(f"release-{release['commit']}", out, lambda where: _recorded(release, where))


def _recorded(newest: dict[str, str], out: Path) -> Path:
    tree = out / f"release-{newest['version']}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", newest["commit"]], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"openmfa-{newest['version']}-*.whl"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> tuple[Path, Path]:
    """(the previous release, built from its recorded commit; this tree as the next release)."""
    out = tmp_path_factory.mktemp("wheels")
    return recorded_release(out), build_wheel(ROOT, out, NEW)


@pytest.fixture(scope="module")
def site(wheels: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serving_site(tmp_path_factory.mktemp("site"), wheels[0]) as s:
        yield s


@contextlib.contextmanager
def serving_site(base: Path, wheel: Path) -> Iterator[Site]:
    """A host installed from ``wheel`` (``openmfa install``), with alice's TOTP and HOTP
    methods and a RADIUS client, its node serving; stopped at the end (whatever release then
    runs it)."""
    root, record = base / "root", base / "install.toml"
    out = Site.run(
        OPENMFA,
        "install",
        "--root",
        str(root),
        "--from-wheel",
        str(wheel),
        "--record",
        str(record),
    ).stdout
    token = re.search(r"(omfa_\S+)", out).group(1)  # type: ignore[union-attr]
    var = root / "var"
    port, radius_port = free_port(), free_udp_port()
    cfg = var / "server.toml"
    text = cfg.read_text()
    text = text.replace('listen = "127.0.0.1:8480"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{radius_port}"')
    text = text.replace(
        "lockout_threshold = 10", "lockout_threshold = 7  # agreed with security, 2026"
    )
    cfg.write_text("# Site config of the test farm\n" + text)
    s = Site(root, record, var, f"http://127.0.0.1:{port}", radius_port, token)
    s.old("user", "add", "alice", "--data-dir", str(var))
    s.old("method", "add", "alice", "totp", "--secret", SEED, "--no-qr", "--data-dir", str(var))
    s.old(
        "method", "add", "alice", "hotp", "--secret", HOTP_SEED, "--no-qr", "--data-dir", str(var)
    )
    s.old(
        "radius",
        "client",
        "add",
        "local",
        "--address",
        "127.0.0.1/32",
        "--secret",
        "radius-secret-1",
        "--data-dir",
        str(var),
    )
    log = (var / "first-serve.log").open("w")
    proc = subprocess.Popen(
        [str(root / "current" / "venv" / "bin" / "openmfa"), "serve", "--data-dir", str(var)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(s.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        code = oathtool("--totp", "-b", SEED)
        assert httpx.post(
            s.url + "/v1/authenticate",
            json={"user": "alice", "code": code},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["accepted"]
        yield s
    finally:
        pid = s.server_pid()
        if pid is not None:  # the node the upgrade (re)started on our behalf
            os.kill(pid, signal.SIGTERM)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(autouse=True)
def back_to_the_old_release(site: Site) -> Iterator[None]:
    """Each test starts from the previous release serving, even after one failed half-way."""
    yield
    if (site.root / "upgrade-journal.json").exists() or site.version() != OLD:
        site.rollback()


def test_upgrade_then_rollback(site: Site, wheels: tuple[Path, Path]) -> None:
    assert site.version() == OLD
    custom = site.root / "themes" / "Corporate"
    custom.mkdir(parents=True)
    (custom / "theme.css").write_text(":root { --omfa-accent: #c00; }")
    # The mobile service of this host: its prefix (the URL phones were given) must survive.
    mobile = site.var / "mobile.toml"
    mobile.write_text(
        '[mobile]\nprefix = "/mfa-app"  # the URL on the phones\nnodes = ["http://10.0.0.1:8480"]\n'
    )
    out = site.upgrade("--from-wheel", str(wheels[1])).stdout
    assert "kept custom theme Corporate untouched" in out
    assert (site.root / "themes" / "Default" / "static" / "theme.css").exists()
    assert (site.root / "themes" / "Default" / "templates" / "sign_in.html").exists()
    assert (custom / "theme.css").read_text() == ":root { --omfa-accent: #c00; }"
    assert "synthetic authentication accepted" in out and "kept" in out
    assert site.version() == NEW
    site.check_everything_is_there()
    record = tomllib.loads(site.record.read_text())
    assert record["version"] == NEW and record["history"][-1]["action"] == "upgrade"
    backup = site.root / "backups" / record["history"][-1]["backup"]
    assert "lockout_threshold = 7" in (backup / "config-merge.txt").read_text()
    merged = mobile.read_text()
    assert 'prefix = "/mfa-app"  # the URL on the phones' in merged and "10.0.0.1" in merged
    assert "mobile.toml merged" in out
    out = site.rollback()
    assert f"{OLD} is installed again" in out
    assert site.version() == OLD
    site.check_everything_is_there()
    assert mobile.read_text().startswith('[mobile]\nprefix = "/mfa-app"')  # as it was


def test_sigkill_after_each_step_then_rerun(site: Site, wheels: tuple[Path, Path]) -> None:
    """One upgrade killed right after each step in turn: the first run after the first step,
    each rerun — a new process, resuming from the journal — after the next step, until the
    last rerun finishes it. So every step runs in a process that starts from what a killed one
    left; then everything is there, and the rollback brings the old release back."""
    assert site.version() == OLD

    def upgrade(killed_after: str, *args: str) -> subprocess.CompletedProcess[str]:
        return site.upgrade(*args, expect=None, env={CRASH_HOOK: killed_after})  # type: ignore[arg-type]

    crashed = upgrade(STEPS[0], "--from-wheel", str(wheels[1]))
    assert crashed.returncode == -signal.SIGKILL, (crashed.stdout, crashed.stderr)
    for i, step in enumerate(STEPS[1:-1], start=1):
        crashed = upgrade(step)  # no source needed: the journal knows
        assert crashed.returncode == -signal.SIGKILL, (step, crashed.stdout, crashed.stderr)
        done = ", ".join(STEPS[:i])
        assert f"resuming the upgrade {OLD} -> {NEW} after: {done}" in crashed.stdout, step
    resumed = site.upgrade().stdout
    assert f"resuming the upgrade {OLD} -> {NEW} after: {', '.join(STEPS[:-1])}" in resumed
    assert site.version() == NEW
    site.check_everything_is_there()
    site.rollback()
    assert site.version() == OLD


def test_a_failing_upgrade_leaves_the_installation_untouched(site: Site, tmp_path: Path) -> None:
    bogus = tmp_path / "openmfa-9.9.9-py3-none-any.whl"
    bogus.write_bytes(b"not a wheel")
    before = (site.var / "openmfa.db").stat().st_size
    proc = site.upgrade("--from-wheel", str(bogus), expect=1)
    # Refused while the release is installed beside, before anything on the host changes.
    assert f"{OLD} serves on, nothing on this host was changed" in proc.stderr, proc.stderr
    assert not (site.root / "upgrade-journal.json").exists()
    assert not (site.root / "releases" / "9.9.9").exists()
    assert site.version() == OLD and (site.var / "openmfa.db").stat().st_size == before
    site.check_everything_is_there()


def test_upgrade_from_an_offline_bundle(
    site: Site, wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    """A host with no index: the new release comes as a bundle made on an upgraded node."""
    other = tmp_path / "other"
    Site.run(
        OPENMFA,
        "install",
        "--root",
        str(other / "root"),
        "--from-wheel",
        str(wheels[1]),
        "--record",
        str(other / "install.toml"),
    )
    bundle = tmp_path / f"openmfa-{NEW}.tar.gz"
    Site.run(OPENMFA, "bundle", "create", str(bundle), "--record", str(other / "install.toml"))
    out = site.upgrade("--from-bundle", str(bundle)).stdout
    assert "synthetic authentication accepted" in out and site.version() == NEW
    site.check_everything_is_there()
    site.rollback()
    assert site.version() == OLD


def test_unreadable_config_stops_before_anything_changes(
    site: Site, wheels: tuple[Path, Path]
) -> None:
    cfg = site.var / "server.toml"
    good = cfg.read_text()
    cfg.write_text(good + "\n[policy\n")
    try:
        proc = site.upgrade("--from-wheel", str(wheels[1]), expect=1)
        assert "not valid TOML" in proc.stderr and f"rolled back to {OLD}" in proc.stderr
    finally:
        cfg.write_text(good)
    assert site.version() == OLD
    site.check_everything_is_there()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB filesystem (tmpfs), for writes that run out of space."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("this machine does not let the tests mount a small filesystem")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_during_the_backup_leaves_everything_serving(
    site: Site, wheels: tuple[Path, Path], tiny_disk: Path
) -> None:
    cfg = site.var / "server.toml"
    good = cfg.read_text()
    cfg.write_text(re.sub(r'^dir = ".*"$', f'dir = "{tiny_disk}"', good, count=1, flags=re.M))
    try:
        proc = site.upgrade("--from-wheel", str(wheels[1]), expect=1)
        assert "could not copy the data" in proc.stderr and "rolled back" in proc.stderr
        assert not any(tiny_disk.iterdir())  # the partial backup was cleaned up
    finally:
        cfg.write_text(good)
    assert site.version() == OLD
    site.check_everything_is_there()


def test_install_refuses_a_disk_that_is_too_small(
    wheels: tuple[Path, Path], tiny_disk: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [
            OPENMFA,
            "install",
            "--root",
            str(tiny_disk / "root"),
            "--from-wheel",
            str(wheels[1]),
            "--record",
            str(tmp_path / "r.toml"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "MiB are needed; free some space first" in proc.stderr
    assert not (tmp_path / "r.toml").exists()


# -- a node restarted by upgrade and rollback runs exactly as it ran before -----------------------


def _install(base: Path, wheel: Path, *extra: str) -> tuple[Path, Path]:
    root, record = base / "root", base / "install.toml"
    Site.run(
        OPENMFA, "install", "--root", str(root), "--from-wheel", str(wheel), "--record",
        str(record), *extra,
    )  # fmt: skip
    return root, record


def _process(pid: int) -> tuple[list[str], dict[str, str]]:
    """(command line, environment) of a running process."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    env = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return argv, dict(e.split("=", 1) for e in env if "=" in e)


def _udp_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"no node at {url}"
        time.sleep(0.1)


def _lock_pid(var: Path) -> int:
    return int((var / "openmfa.lock").read_text().strip())


def test_a_node_started_with_overrides_comes_back_with_them(
    wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    """The node runs `serve --listen P --radius-listen off` with an environment of its own,
    while server.toml names another port and RADIUS on: `upgrade` and `rollback` restart it
    on P, without RADIUS, with the same environment (as it was, the node came back on the
    configured port with RADIUS on, and `upgrade` said it succeeded)."""
    root, record = _install(tmp_path, wheels[0])
    var = root / "var"
    port, configured, radius = free_port(), free_port(), free_udp_port()
    cfg = var / "server.toml"
    text = cfg.read_text().replace(
        'listen = "127.0.0.1:8480"', f'listen = "127.0.0.1:{configured}"'
    )
    cfg.write_text(text.replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{radius}"'))
    url = f"http://127.0.0.1:{port}"
    overrides = ["--listen", f"127.0.0.1:{port}", "--radius-listen", "off"]
    serve = [str(root / "current" / "venv" / "bin" / "openmfa"), "serve", "--data-dir", str(var)]
    proc = subprocess.Popen(
        [*serve, *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OPENMFA_TEST_SITE": "overrides"},
    )
    try:
        _wait_ready(url)
        for command, version in (("upgrade", NEW), ("rollback", OLD)):
            before = _lock_pid(var)
            args = ["--from-wheel", str(wheels[1])] if command == "upgrade" else []
            out = Site.run(OPENMFA, command, "--yes", "--record", str(record), *args).stdout
            assert "synthetic authentication accepted" in out, out
            assert httpx.get(url + "/version").json()["release"] == version
            pid = _lock_pid(var)
            assert pid != before
            argv, env = _process(pid)
            assert argv[-5:-1] == overrides, argv  # (argv ends with an empty string)
            assert env.get("OPENMFA_TEST_SITE") == "overrides"
            with pytest.raises(httpx.ConnectError):  # nothing on the configured port
                httpx.get(f"http://127.0.0.1:{configured}/readyz")
            assert _udp_free(radius), "RADIUS was switched on"
    finally:
        pid = _lock_pid(var)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=30)


FAKE_SYSTEMCTL = r'''#!PYTHON
"""A stand-in for systemctl (no systemd runs here): starts and stops the unit's ExecStart the
way systemd would, and logs what it was asked."""
import fcntl, os, signal, subprocess, sys, time, uuid
from pathlib import Path

verb, unit = sys.argv[1], sys.argv[2]
units = Path(os.environ["FAKE_SYSTEMD_UNITS"])
with open(units / "systemctl.log", "a") as log:
    log.write(f"{verb} {unit}\n")
spec = (units / unit).read_text().splitlines()
exec_start = next(ln.split("=", 1)[1] for ln in spec if ln.startswith("ExecStart="))
env = dict(ln.split("=", 1)[1].split("=", 1) for ln in spec if ln.startswith("Environment="))
var = Path(exec_start.split("--data-dir ", 1)[1].split()[0])
if verb not in ("start", "stop", "restart"):
    sys.exit(f"fake systemctl: {verb} is not faked")
running = False  # does a node hold the lock, as systemd would know its unit active?
if (var / "openmfa.lock").exists():
    with open(var / "openmfa.lock") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            running, pid = True, int(lock.read())
if verb in ("stop", "restart") and running:
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
if verb in ("start", "restart") and not (verb == "start" and running):
    subprocess.Popen(
        exec_start.split(),
        env={"PATH": os.environ["PATH"], "INVOCATION_ID": uuid.uuid4().hex, **env},
        stdout=open(units / "unit.log", "a"), stderr=subprocess.STDOUT, start_new_session=True,
    )
'''


def test_a_node_under_a_service_manager_is_restarted_through_it(
    wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    """The unit `openmfa install --systemd-dir` writes names itself in the node's environment;
    `upgrade` and `rollback` then stop and start the node with `systemctl stop|restart UNIT`
    (here a stand-in that runs the unit's ExecStart as systemd would), never by themselves."""
    units = tmp_path / "units"
    root, record = _install(tmp_path, wheels[0], "--systemd-dir", str(units))
    var = root / "var"
    port = free_port()
    cfg = var / "server.toml"
    text = cfg.read_text().replace('listen = "127.0.0.1:8480"', f'listen = "127.0.0.1:{port}"')
    cfg.write_text(
        text.replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{free_udp_port()}"')
    )
    unit = "openmfa-server.service"
    assert f"Environment=OPENMFA_SERVICE_UNIT={unit}" in (units / unit).read_text()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.replace("PYTHON", sys.executable, 1))
    systemctl.chmod(0o755)
    env = {**os.environ, "FAKE_SYSTEMD_UNITS": str(units), "OPENMFA_SYSTEMCTL": str(systemctl)}
    subprocess.run([str(systemctl), "start", unit], env=env, check=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        for command, version in (("upgrade", NEW), ("rollback", OLD)):
            args = ["--from-wheel", str(wheels[1])] if command == "upgrade" else []
            out = subprocess.run(
                [OPENMFA, command, "--yes", "--record", str(record), *args],
                env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert out.returncode == 0, out.stdout + out.stderr
            assert "through its service manager" in out.stdout, out.stdout
            assert httpx.get(url + "/version").json()["release"] == version
            _, node_env = _process(_lock_pid(var))
            assert node_env.get("OPENMFA_SERVICE_UNIT") == unit and node_env.get("INVOCATION_ID")
        asked = (units / "systemctl.log").read_text().splitlines()
        assert asked == [f"start {unit}", *[f"stop {unit}", f"restart {unit}"] * 2], asked
    finally:
        pid = _lock_pid(var)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)
