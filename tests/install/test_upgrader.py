"""Pieces of the upgrader that need no installed release."""

from __future__ import annotations

from pathlib import Path

from openmfa.install.record import InstallRecord
from openmfa.install.upgrader import Journal, Upgrade


def test_rollback_puts_the_previous_server_toml_back_before_restoring(tmp_path: Path) -> None:
    """The merged file may hold settings the previous release does not know; it must read
    server.toml to restore its backup, so the file from the backup goes back first."""
    data = tmp_path / "var"
    backups = tmp_path / "elsewhere"
    before = f'[backup]\ndir = "{backups}"\n'
    (backups / "B1").mkdir(parents=True)
    (backups / "B1" / "server.toml").write_text(before)
    data.mkdir()
    (data / "server.toml").write_text(before + "[farm]\nsetting_of_the_new_release = 1\n")
    record = tmp_path / "install.toml"
    InstallRecord(str(tmp_path), "0.2.0", ["server"], str(data)).save(record)

    Upgrade(record, lambda _: None)._put_back_config(Journal("0.2.0", "0.2.1", "b", backup_id="B1"))
    assert (data / "server.toml").read_text() == before

    # No such backup: the file is left as it is (the restore then says what is wrong).
    (data / "server.toml").write_text("changed = 1\n")
    Upgrade(record, lambda _: None)._put_back_config(Journal("0.2.0", "0.2.1", "b", backup_id="B9"))
    assert (data / "server.toml").read_text() == "changed = 1\n"
