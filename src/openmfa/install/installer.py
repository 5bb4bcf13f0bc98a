"""``openmfa install``: a release side by side, ``current`` switched, data directory created,
install record written. Each step is reported; re-running after a failure is safe."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import Conflict, InstallFailed, InvalidInput
from .record import InstallRecord
from .releases import install_release, package_dir, switch_current
from .themes import install_default

MIN_FREE_BYTES = 400 * 1024 * 1024
COMPONENTS = ("server", "portal", "mobile", "adapter", "console")

UNIT = """[Unit]
Description=OpenMFA {what} ({root})
After=network-online.target

[Service]
ExecStart={root}/current/venv/bin/openmfa {command}
# `openmfa upgrade` and `rollback` restart the service through systemctl when this is set.
Environment=OPENMFA_SERVICE_UNIT={unit}
Restart=on-failure
KillSignal=SIGTERM
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""
SERVICES = {
    "server": ("Server node", "serve --data-dir {data_dir}"),
    "mobile": ("Mobile App Web Service", "mobile serve --config {data_dir}/mobile.toml"),
    "portal": ("User Portal", "portal serve --config {data_dir}/portal.toml"),
    "adapter": ("adapter agent", "adapter agent --config {data_dir}/adapter.toml"),
    "console": ("administration console", "console serve --config {data_dir}/console.toml"),
}
"""The components that run as a service: what the unit says, and the command after openmfa."""

MOBILE_NEXT = """The Mobile App Web Service's settings are in {config}: name the nodes' SDK URLs in
`nodes`, and put a key of scope mobile (`openmfa apikey create mobile --scope mobile` on the
master) in a file of mode 0600 named by `api_key_file`. Then run
  {root}/current/venv/bin/openmfa mobile serve --config {config}
"""


PORTAL_NEXT = """The User Portal's settings are in {config}: name the nodes' SDK URLs in `nodes`,
and put a key of scope portal (`openmfa apikey create portal --scope portal` on the master) in a
file of mode 0600 named by `api_key_file`. Its themes are in {root}/themes. Then run
  {root}/current/venv/bin/openmfa portal serve --config {config}
"""


ADAPTER_NEXT = """The identity-provider adapters' settings are in {config}: set
`node_url` (the nodes' SDK, or the load balancer in front of them) and put a key of scope
adapter (`openmfa apikey create NAME --scope adapter` on the master) in a file of mode 0600
named by `api_key_file`. Register with `{root}/current/venv/bin/openmfa adapter register
lemonldap|nginx --config {config}`; then `openmfa farm join-component --kind adapter --config
{config} --name NAME` and run `{root}/current/venv/bin/openmfa adapter agent --config {config}`
as a service, and the farm's upgrades move this host too.
"""


CONSOLE_NEXT = """The administration console's settings are in {config}: name the nodes' SDK URLs in
`nodes`, and put a key of scope console (`openmfa apikey create console1 --scope console` on the
master) in a file of mode 0600 named by `api_key_file`; give operators a role (`openmfa user
role NAME helpdesk`). Then run
  {root}/current/venv/bin/openmfa console serve --config {config}
"""


def check_prerequisites(root: Path, need_bytes: int = MIN_FREE_BYTES) -> None:
    # The Python version needs no check here: the new environment is made with this very
    # interpreter, which `requires-python` already held to 3.11 or newer.
    probe = root / ".write-test"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_text("x")
        probe.unlink()
    except OSError as exc:
        raise InstallFailed(
            f"{root} is not writable ({exc.strerror}); run as the owner of it "
            f"or choose another --root"
        ) from None
    if sqlite3.sqlite_version_info < (3, 35):
        raise InstallFailed(
            f"SQLite {sqlite3.sqlite_version} is too old (3.35 or newer is "
            "needed); apt-get install libsqlite3-0, or use a newer Python build"
        )
    free = shutil.disk_usage(root).free
    if free < need_bytes:
        raise InstallFailed(
            f"{root} has {free // 2**20} MiB free, {need_bytes // 2**20} MiB "
            "are needed; free some space first"
        )


def install(
    root: Path,
    record_file: Path,
    *,
    wheel: Path | None,
    bundle: Path | None,
    components: list[str],
    systemd_dir: Path | None,
    say: Callable[[str], None],
) -> tuple[InstallRecord, str]:
    """Returns the record and what `openmfa init` printed (the first admin key) or ''."""
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise InvalidInput(
            f"unknown components {', '.join(sorted(unknown))}; choose from {', '.join(COMPONENTS)}"
        )
    root = root.resolve()
    if record_file.exists():
        existing = InstallRecord.load(record_file)
        if Path(existing.root) != root:
            raise Conflict(
                f"{record_file} records an installation at {existing.root}; use "
                "`openmfa upgrade`, or another --record for a second installation"
            )
    steps = 5 + (systemd_dir is not None)
    say(f"[1/{steps}] checking prerequisites")
    check_prerequisites(root)
    say(f"[2/{steps}] installing the release under {root}/releases")
    version = install_release(root, wheel=wheel, bundle=bundle)
    say(f"[3/{steps}] switching {root}/current to {version}")
    switch_current(root, version)
    data_dir = root / "var"
    printed = ""
    say(f"[4/{steps}] preparing the data directory {data_dir}")
    fresh = not (data_dir / "openmfa.db").exists() and not (data_dir / "openmfa.key").exists()
    if "server" in components and fresh:
        out = subprocess.run(
            [
                str(root / "current" / "venv" / "bin" / "openmfa"),
                "init",
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise InstallFailed(f"`openmfa init` failed: {out.stderr.strip()}")
        printed = out.stdout
        # Backups live beside the releases (ROOT/backups), not inside the data they protect.
        cfg = data_dir / "server.toml"
        cfg.write_text(cfg.read_text().replace('dir = ""', f'dir = "{root / "backups"}"', 1))
    for name, next_steps in (
        ("mobile", MOBILE_NEXT),
        ("portal", PORTAL_NEXT),
        ("adapter", ADAPTER_NEXT),
        ("console", CONSOLE_NEXT),
    ):
        cfg = data_dir / f"{name}.toml"
        if name not in components or cfg.exists():
            continue
        out = subprocess.run(
            [str(root / "current" / "venv" / "bin" / "openmfa"), name, "default-config"],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise InstallFailed(f"`openmfa {name} default-config` failed: {out.stderr.strip()}")
        data_dir.mkdir(parents=True, exist_ok=True)
        # The themes an upgrade keeps (ROOT/themes): the portal reads them there.
        text = out.stdout.replace('themes_dir = "themes"', f'themes_dir = "{root / "themes"}"', 1)
        cfg.write_text(text)
        printed += next_steps.format(config=cfg, root=root)
    if not (root / "themes" / "Default").exists():
        install_default(root / "themes", package_dir(root, version) / "themes")
    record = InstallRecord(
        root=str(root), version=version, components=components, data_dir=str(data_dir)
    )
    for name in ("mobile", "portal", "adapter", "console"):
        if name in components:
            record.service_names[name] = f"openmfa-{name}"
    record.history.append({"action": "install", "version": version})
    say(f"[5/{steps}] writing the install record {record_file}")
    record.save(record_file)
    if systemd_dir is not None:
        say(f"[6/{steps}] writing systemd unit files to {systemd_dir}")
        systemd_dir.mkdir(parents=True, exist_ok=True)
        for component, (what, command) in SERVICES.items():
            if component in components:
                name = f"{record.service_names[component]}.service"
                (systemd_dir / name).write_text(
                    UNIT.format(
                        what=what, root=root, command=command.format(data_dir=data_dir), unit=name
                    )
                )
    return record, printed
