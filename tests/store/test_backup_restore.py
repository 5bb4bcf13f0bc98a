"""Restoring a backup folder that may come from another host: it writes only where this host's
configuration (or the backup's own) puts each key file, reads each file of the folder once,
restores only what its manifest lists, never follows a planted name, keeps the files' owners,
never prunes the backup it restores, and says no database password."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from pathlib import Path

import pytest

from openmfa.errors import BackupFailed
from openmfa.node.accounts import Accounts
from openmfa.store import pg_tools
from openmfa.store.backup_keys import INDEX, copy_private
from openmfa.store.backups import MANIFEST, Backups
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config, pg_database


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def _host(tmp_path: Path, keep: int = 5) -> tuple[DataDir, Path]:
    """A node with alice, a portal and a mobile service whose VAPID key is outside the data
    directory (its path returned)."""
    dd = DataDir(tmp_path / "node")
    store = Store.create(dd, make_config())
    try:
        Accounts(store, make_config()).add_user("alice")
    finally:
        store.close()
    (dd.root / "server.toml").write_text(f"[backup]\nkeep = {keep}\n")
    (dd.root / "portal.toml").write_text(
        '[portal]\napi_key_file = "portal.key"\nsession_key_file = "session.key"\n'
    )
    vapid = tmp_path / "etc" / "vapid.pem"
    (dd.root / "mobile.toml").write_text(f'[mobile]\nwebpush_vapid_key_file = "{vapid}"\n')
    for name in ("portal.key", "session.key"):
        _secret(dd.root / name)
    _secret(vapid)
    return dd, vapid


def _rewrite_index(path: Path, change: dict[str, object], which: str) -> None:
    """Change the keys.json entry ``which`` and fix the manifest's checksum (it is unsigned)."""
    index = json.loads((path / INDEX).read_text())
    (entry,) = [e for e in index if e["id"] == which]
    entry.update(change)
    (path / INDEX).write_text(json.dumps(index))
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"][INDEX] = _sha(path / INDEX)
    (path / MANIFEST).write_text(json.dumps(manifest))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


@pytest.mark.parametrize("which", ["mobile-vapid-key", "release-keys"])
def test_a_key_sent_to_any_other_absolute_path_is_refused_and_nothing_written(
    tmp_path: Path, which: str
) -> None:
    dd, _ = _host(tmp_path)
    info = Backups(dd, dd.config()).create()
    victim = tmp_path / "victim" / "authorized_keys"
    victim.parent.mkdir()
    victim.write_text("mine\n")
    _rewrite_index(Path(info.path), {"belongs": str(victim), "id": which}, "mobile-vapid-key")
    new = DataDir(tmp_path / "new-host")
    install = tmp_path / "install"  # the release keys go only to install/trusted-release-keys
    with pytest.raises(BackupFailed, match="nothing was changed") as refused:
        Backups(new, new.config(), install_root=install).restore(info.path)
    assert f"would be written at {victim}, which is not" in refused.value.message
    assert victim.read_text() == "mine\n" and sorted(os.listdir(victim.parent)) == [
        "authorized_keys"
    ]
    assert not new.root.exists() and not install.exists()


def test_release_keys_go_back_only_to_the_installations_trusted_file(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    install = tmp_path / "install"
    trusted = install / "trusted-release-keys"
    _secret(trusted)
    info = Backups(dd, dd.config(), install_root=install).create()
    kept = trusted.read_text()
    trusted.unlink()
    new = DataDir(tmp_path / "new-host")
    done = Backups(new, new.config(), install_root=install).restore(info.path)
    assert trusted.read_text() == kept
    assert any(line.endswith(f"{trusted} (outside the data directory)") for line in done.said)


def test_an_index_entry_of_the_wrong_kind_is_a_clear_refusal(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    _rewrite_index(Path(info.path), {"belongs": 5}, "mobile-vapid-key")
    (problem,) = backups.verify(info.id)
    assert problem.startswith(f"{INDEX} of backup {info.id}: entry ")
    assert problem.endswith("is not id, what, file, belongs, sha256 as text")
    with pytest.raises(BackupFailed, match="nothing was changed"):
        backups.restore(info.id)


def test_a_planted_link_beside_a_destination_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched\n")
    dest = tmp_path / "dir" / "key"
    dest.parent.mkdir()
    for name in (f"{dest.name}.partial", f".{dest.name}.partial", f".{dest.name}."):
        (dest.parent / name).symlink_to(target)
    src = tmp_path / "src"
    src.write_text("secret\n")
    copy_private(src, dest)
    assert target.read_text() == "untouched\n"
    assert dest.read_text() == "secret\n" and not dest.is_symlink()
    assert dest.stat().st_mode & 0o777 == 0o600


def test_a_restore_reads_the_folder_once_and_restores_its_private_copy(tmp_path: Path) -> None:
    dd, vapid = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    kept = vapid.read_text()
    src = Path(info.path)
    with backups.staged(info) as staged:
        assert staged.parent == dd.root and staged.stat().st_mode & 0o777 == 0o700
        # Changed after the checksums were taken: the copy checked is what goes back.
        (src / "keys" / "mobile-vapid-key").write_text("changed since\n")
        (src / "openmfa.db").write_bytes(b"not a data file")
        _secret(vapid)
        backups.restore_staged(info, staged)
    assert not staged.exists()
    assert vapid.read_text() == kept
    store = Store.open(dd)
    try:
        assert [u.name for u in Accounts(store, dd.config()).list_users()] == ["alice"]
    finally:
        store.close()


def test_a_configuration_not_in_the_manifest_is_not_restored(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    info = Backups(dd, dd.config()).create()
    path = Path(info.path)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["files"]["portal.toml"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    (path / "portal.toml").write_text('[portal]\napi_key_file = "/etc/shadow"\n')
    new = DataDir(tmp_path / "new-host")
    Backups(new, new.config()).restore(info.path)
    assert not (new.root / "portal.toml").exists()
    assert (new.root / "mobile.toml").read_text() == (dd.root / "mobile.toml").read_text()


def test_the_backup_being_restored_is_not_pruned(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path, keep=2)
    backups = Backups(dd, dd.config())
    oldest = backups.create("one")
    backups.create("two")
    done = backups.restore(oldest.id)
    assert done.safety is not None
    ids = [b.id for b in backups.all()]
    assert oldest.id in ids and done.safety.id in ids
    assert backups.verify(oldest.id) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files away: needs root")
def test_restored_files_keep_their_owner(tmp_path: Path) -> None:
    dd, vapid = _host(tmp_path)
    info = Backups(dd, dd.config()).create()
    for path in (dd.data_file, dd.key_file, dd.root / "session.key", dd.root / "portal.toml"):
        os.chown(path, 12345, 12346)
    os.chown(vapid.parent, 12347, 12347)  # a new file takes its folder's owner
    vapid.unlink()
    Backups(dd, dd.config()).restore(info.id)
    for path in (dd.data_file, dd.key_file, dd.root / "session.key", dd.root / "portal.toml"):
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 12346), path
    assert (vapid.stat().st_uid, vapid.stat().st_gid) == (12347, 12347)


def test_an_unreadable_key_file_fails_the_backup_by_name(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    unreadable = Path("/proc/self/mem")  # a file whose read fails (EIO), even for root
    (dd.root / "mobile.toml").write_text(f'[mobile]\nwebpush_vapid_key_file = "{unreadable}"\n')
    backups = Backups(dd, dd.config())
    with pytest.raises(BackupFailed) as failed:
        backups.create()
    assert failed.value.message.startswith(
        f"the WebPush VAPID key (mobile.toml [mobile] webpush_vapid_key_file) cannot be read "
        f"at {unreadable} ("
    )
    assert failed.value.message.endswith("no backup was taken")
    assert backups.all() == [] and list(dd.backups.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_pg_tool_says_no_password(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(8)
    url = f"postgresql://openmfa:{password}@127.0.0.1:{_closed_port()}/openmfa?sslmode=disable"
    assert pg_tools.without_password(url)[1] == password
    for tool, args in (
        ("pg_dump", ["--format=custom", "--file", str(tmp_path / "d")]),
        ("pg_restore", ["--clean", str(tmp_path / "none")]),
    ):
        with pytest.raises(BackupFailed, match=rf"^{tool} failed \(exit status 1\): ") as failed:
            pg_tools.run(tool, args, url)
        assert password not in failed.value.message and "--dbname" not in failed.value.message
    dd = DataDir(tmp_path / "node")
    dd.root.mkdir()
    with pytest.raises(BackupFailed) as failed:
        Backups(dd, make_config(store={"url": url})).create()
    assert password not in failed.value.message


@pytest.mark.postgres
def test_a_postgresql_backup_needs_the_database_to_restore_into(tmp_path: Path) -> None:
    databases = pg_database()
    url = next(databases)
    try:
        dd = DataDir(tmp_path / "node")
        dd.root.mkdir()
        (dd.root / "server.toml").write_text(f'[store]\nurl = "{url}"\n')
        Store.create(dd, dd.config()).close()
        info = Backups(dd, dd.config()).create()
        new = DataDir(tmp_path / "new-host")
        with pytest.raises(BackupFailed) as refused:
            Backups(new, new.config()).restore(info.path)
        assert refused.value.message == (
            f"backup {info.id} holds a PostgreSQL dump: put server.toml with [store] url (the "
            f"database to restore into) in {new.root} first; nothing was changed"
        )
        assert not new.root.exists()
        empty = pg_database()
        there = next(empty)
        try:
            new.root.mkdir()
            (new.root / "server.toml").write_text(f'[store]\nurl = "{there}"\n')
            done = Backups(new, new.config()).restore(info.path)
            assert done.safety is None  # an empty database: no data to keep
            assert f'url = "{there}"' in (new.root / "server.toml").read_text()
            assert done.said[0].startswith("kept this host's server.toml")
            Store.open(new).close()
        finally:
            next(empty, None)
    finally:
        next(databases, None)
