"""The farm agent starts `openmfa upgrade` so that it outlives the node it restarts."""

from __future__ import annotations

from pathlib import Path

from openmfa.farm.agent import command_line


def test_without_a_service_manager_the_command_runs_detached_as_is() -> None:
    argv = command_line(Path("/etc/openmfa/install.toml"), Path("/l.log"), "upgrade", "--x")
    assert argv[1:] == ["upgrade", "--x", "--yes", "--record", "/etc/openmfa/install.toml"]
    assert argv[0].endswith("/openmfa")


def test_under_systemd_the_command_is_a_unit_of_its_own() -> None:
    """Stopping the node's unit stops every process in its cgroup: the upgrade runs in a
    transient unit (systemd-run), its output appended to the same log."""
    argv = command_line(
        Path("/etc/openmfa/install.toml"),
        Path("/srv/openmfa/farm-upgrade.log"),
        "upgrade",
        "--from-bundle",
        "/b.tar.gz",
        unit="openmfa-server.service",
    )
    assert argv[0] == "systemd-run"
    assert argv[1].startswith("--unit=openmfa-farm-upgrade-")
    assert "--collect" in argv
    assert "--property=StandardOutput=append:/srv/openmfa/farm-upgrade.log" in argv
    assert "--setenv=OPENMFA_INSTALL_RECORD=/etc/openmfa/install.toml" in argv
    rest = argv[argv.index("--") + 1 :]
    assert rest[1:] == [
        "upgrade", "--from-bundle", "/b.tar.gz", "--yes", "--record", "/etc/openmfa/install.toml",
    ]  # fmt: skip
