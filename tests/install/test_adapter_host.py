"""An adapter host's part in the farm's upgrades (``openmfa.adapter_agent``): the steps of an
order, in order, and everything put back when a registration cannot move; the agent's health
looked at again only now and then; ``[adapter] name`` and ``idps`` checked.
(The whole thing, with LemonLDAP::NG and real releases: tests/e2e/test_deployment_upgrade.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa.adapter_agent import Health, move_command, move_host
from openmfa.adapters.config import load
from openmfa.errors import ConfigError, InstallFailed, OpenMfaError
from openmfa.install.record import InstallRecord
from openmfa.sdk.models import ComponentOrder


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "install.toml"
    root = tmp_path / "root"
    InstallRecord(str(root), "1.0.0", ["adapter"], str(root / "var")).save(path)
    return path


def test_an_upgrade_moves_the_release_then_each_registration(record: Path, tmp_path: Path) -> None:
    ran: list[list[str]] = []
    cfg = tmp_path / "adapter.toml"
    move_host("upgrade", cfg, record, "/srv/b.tar.gz", ("lemonldap", "nginx"), print, ran.append)
    bin_ = str(tmp_path / "root" / "current" / "venv" / "bin" / "openmfa")
    assert ran == [
        [bin_, "upgrade", "--yes", "--from-bundle", "/srv/b.tar.gz", "--record", str(record)],
        [bin_, "adapter", "upgrade", "lemonldap", "--config", str(cfg)],
        [bin_, "adapter", "upgrade", "nginx", "--config", str(cfg)],
    ]
    ran.clear()  # a rollback: the registrations first (by the release that moved them)
    move_host("rollback", cfg, record, "", ("lemonldap",), print, ran.append)
    assert ran == [
        [bin_, "adapter", "rollback", "lemonldap", "--config", str(cfg)],
        [bin_, "rollback", "--yes", "--record", str(record)],
    ]


def test_a_registration_that_cannot_move_puts_everything_back(record: Path, tmp_path: Path) -> None:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> None:
        ran.append(argv[1:4])
        if argv[1:4] == ["adapter", "upgrade", "nginx"]:
            raise InstallFailed("nginx -t failed")

    said: list[str] = []
    with pytest.raises(InstallFailed) as err:
        move_host(
            "upgrade", tmp_path / "a.toml", record, "/b", ("lemonldap", "nginx"), said.append, run
        )
    assert "back on its previous release" in err.value.message
    assert ran == [
        ["upgrade", "--yes", "--from-bundle"],
        ["adapter", "upgrade", "lemonldap"],
        ["adapter", "upgrade", "nginx"],
        ["adapter", "rollback", "lemonldap"],  # the one that had moved goes back
        ["rollback", "--yes", "--record"],
    ]
    assert any("nginx -t failed" in line for line in said)


def test_the_release_that_cannot_upgrade_moves_no_registration(
    record: Path, tmp_path: Path
) -> None:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> None:
        ran.append(argv[1:3])
        raise InstallFailed("no space left")  # `openmfa upgrade` rolled itself back

    with pytest.raises(OpenMfaError):
        move_host("upgrade", tmp_path / "a.toml", record, "/b", ("lemonldap",), print, run)
    assert ran == [["upgrade", "--yes"]]


def test_health_is_looked_at_again_only_now_and_then_unless_wrong(tmp_path: Path) -> None:
    answers = iter(["ok", "lemonldap: OpenMFA is not registered", "ok"])
    looks: list[int] = []

    def look(cfg: object) -> str:
        looks.append(1)
        return next(answers)

    health = Health(load(None), look)
    assert health() == "ok" and health() == "ok" and len(looks) == 1  # cached while fine
    health._at -= 3600  # an hour later
    assert health() == "lemonldap: OpenMFA is not registered"
    assert health() == "ok" and len(looks) == 3  # a problem is looked at again every time


def test_name_and_identity_providers_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "adapter.toml"
    cfg.write_text('[adapter]\nname = "idp-1"\nidps = ["lemonldap"]\n')
    loaded = load(cfg)
    assert (loaded.name, loaded.idps) == ("idp-1", ("lemonldap",))
    cfg.write_text('[adapter]\nidps = ["adfs"]\n')
    with pytest.raises(ConfigError, match="adfs"):
        load(cfg)
    cfg.write_text('[adapter]\nname = "no spaces"\n')
    with pytest.raises(ConfigError, match="name"):
        load(cfg)


def test_under_a_service_manager_the_move_runs_in_a_unit_of_its_own(
    record: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "adapter.toml"
    order = ComponentOrder(id="o1", action="upgrade", target="1.1.0", bundle="/srv/b.tar.gz")
    plain = move_command(cfg, record, order, "")
    assert plain[1:6] == ["adapter", "move-host", "upgrade", "--config", str(cfg)]
    assert "--bundle" in plain and "/srv/b.tar.gz" in plain
    managed = move_command(cfg, record, order, "openmfa-adapter.service")
    # systemd-run --wait: outside the agent's unit (a stop does not cut the move in half),
    # and the agent still gets the move's exit status.
    assert managed[:2] == ["systemd-run", "--wait"]
    assert managed[-len(plain) :] == plain
