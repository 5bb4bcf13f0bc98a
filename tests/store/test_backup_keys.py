"""Key files in backups: kept (0600) with their checksums and where they belong, checked by the
read-back, and put back — on an empty data directory too; a damaged one is refused by name
before anything changes; a backup made before key files were kept still restores."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from pathlib import Path

import pytest

from openmfa.errors import BackupFailed
from openmfa.node.accounts import Accounts
from openmfa.store.backup_keys import INDEX
from openmfa.store.backups import MANIFEST, BackupInfo, Backups
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def _host(tmp_path: Path) -> tuple[DataDir, dict[str, str]]:
    """A node with alice, a portal (forward-auth on) and a mobile service whose VAPID key is
    outside the data directory; the keys' contents by file name."""
    dd = DataDir(tmp_path / "node")
    store = Store.create(dd, make_config())
    try:
        Accounts(store, make_config()).add_user("alice")
    finally:
        store.close()
    (dd.root / "server.toml").write_text("[backup]\nkeep = 5\n")
    (dd.root / "portal.toml").write_text(
        '[portal]\napi_key_file = "portal.key"\nsession_key_file = "session.key"\n'
        '[forward_auth]\nenabled = true\ncookie_domain = "example.com"\n'
    )
    vapid = tmp_path / "etc" / "vapid.pem"
    (dd.root / "mobile.toml").write_text(f'[mobile]\nwebpush_vapid_key_file = "{vapid}"\n')
    keys = {
        name: _secret(dd.root / name) for name in ("portal.key", "session.key", "forward-auth.key")
    }
    keys[str(vapid)] = _secret(vapid)
    return dd, keys


def _said(*texts: object) -> str:
    return json.dumps([str(t) for t in texts])


def test_a_backup_keeps_every_key_file_and_an_empty_host_gets_each_back(tmp_path: Path) -> None:
    dd, keys = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    path = Path(info.path)
    assert path.stat().st_mode & 0o777 == 0o700 and (path / "keys").stat().st_mode & 0o777 == 0o700
    index = {k["id"]: k for k in json.loads((path / INDEX).read_text())}
    assert set(index) == {
        "data-key",
        "portal-api-key",
        "portal-session-key",
        "portal-forward-auth-key",
        "mobile-vapid-key",
    }
    fa = index["portal-forward-auth-key"]
    assert fa["belongs"] == "forward-auth.key" and fa["file"] == "keys/portal-forward-auth-key"
    assert index["mobile-vapid-key"]["belongs"] == str(tmp_path / "etc" / "vapid.pem")
    for k in index.values():
        kept = path / k["file"]
        assert kept.stat().st_mode & 0o777 == 0o600
        assert info.files[k["file"]] == k["sha256"] == _sha(kept)
    assert {"portal.toml", "mobile.toml", "server.toml", INDEX} <= set(info.files)
    assert backups.verify(info.id) == [] and backups.notes == []
    # A new host: an empty data directory, and the VAPID key gone from where it was.
    (tmp_path / "etc" / "vapid.pem").unlink()
    new = DataDir(tmp_path / "new-host")
    done = Backups(new, new.config()).restore(str(path))
    assert done.safety is None  # there was nothing to keep
    for name, value in keys.items():
        back = Path(name) if name.startswith("/") else new.root / name
        assert back.read_text() == value + "\n" and back.stat().st_mode & 0o777 == 0o600
    assert (new.root / "portal.toml").read_text() == (dd.root / "portal.toml").read_text()
    assert (new.root / "openmfa.key").read_bytes() == dd.key_file.read_bytes()
    outside = [line for line in done.said if "outside the data directory" in line]
    assert outside == [
        "put back the WebPush VAPID key (mobile.toml [mobile] webpush_vapid_key_file): "
        f"{tmp_path / 'etc' / 'vapid.pem'} (outside the data directory)"
    ]
    store = Store.open(new)
    try:
        assert Accounts(store, new.config()).get_user("alice").name == "alice"
    finally:
        store.close()
    assert not any(v in _said(*done.said) for v in keys.values())


def test_a_damaged_key_file_is_refused_by_name_and_nothing_changes(tmp_path: Path) -> None:
    dd, keys = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    copy = Path(info.path) / "keys" / "portal-forward-auth-key"
    copy.write_text(secrets.token_hex(32) + "\n")
    problems = backups.verify(info.id)
    assert problems == [
        "keys/portal-forward-auth-key, the forward-auth key (portal.toml [forward_auth] "
        "key_file), does not match its checksum (changed or damaged)"
    ]
    _secret(dd.root / "forward-auth.key")  # rotated since: the restore must not touch it
    before = {p.name: p.read_bytes() for p in dd.root.iterdir() if p.is_file()}
    with pytest.raises(BackupFailed, match="nothing was changed") as refused:
        backups.restore(info.id)
    assert "keys/portal-forward-auth-key, the forward-auth key" in refused.value.message
    assert {p.name: p.read_bytes() for p in dd.root.iterdir() if p.is_file()} == before
    assert [b.reason for b in backups.all()] == ["manual"]  # not even a before-restore backup
    assert not any(v in _said(*problems, refused.value) for v in keys.values())


def test_an_index_sending_a_key_out_of_the_data_directory_is_refused(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    path = Path(info.path)
    index = json.loads((path / INDEX).read_text())
    index[1]["belongs"] = "../../outside.key"
    (path / INDEX).write_text(json.dumps(index))
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"][INDEX] = _sha(path / INDEX)  # even with a matching checksum
    (path / MANIFEST).write_text(json.dumps(manifest))
    (problem,) = backups.verify(info.id)
    assert problem.endswith("belongs at '../../outside.key', outside the data directory")


def test_a_backup_made_before_key_files_were_kept_still_restores(tmp_path: Path) -> None:
    dd, keys = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    path = Path(info.path)
    # What an earlier release wrote: the data file, the data key and server.toml, no more.
    for extra in ("keys", INDEX, "portal.toml", "mobile.toml"):
        shutil.rmtree(path / extra) if extra == "keys" else (path / extra).unlink()
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"] = {
        n: manifest["files"][n] for n in ("openmfa.db", "openmfa.key", "server.toml")
    }
    manifest["release"] = "0.2.0"
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert backups.verify(info.id) == []
    rotated = _secret(dd.root / "forward-auth.key")
    store = Store.open(dd)
    try:
        Accounts(store, dd.config()).add_user("mallory")
    finally:
        store.close()
    done = backups.restore(info.id)
    assert done.safety is not None and done.safety.reason == "before-restore"
    assert (dd.root / "forward-auth.key").read_text() == rotated + "\n"  # left as it is
    assert done.said[0].startswith(f"backup {info.id} (release 0.2.0) was taken before")
    assert (
        "not in this backup, left as it is: the forward-auth key (portal.toml [forward_auth] "
        f"key_file), {dd.root.absolute() / 'forward-auth.key'}"
    ) in done.said
    assert len([line for line in done.said if line.startswith("not in this backup")]) == 4
    store = Store.open(dd)
    try:
        names = [u.name for u in Accounts(store, dd.config()).list_users()]
    finally:
        store.close()
    assert names == ["alice"]
    assert not any(v in _said(*done.said) for v in [rotated, *keys.values()])


def test_without_data_here_a_differing_key_file_is_not_replaced(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    info = Backups(dd, dd.config()).create()
    new = DataDir(tmp_path / "new-host")
    mine = _secret(new.root / "session.key")
    with pytest.raises(BackupFailed, match=r"session\.key") as refused:
        Backups(new, new.config()).restore(info.path)
    assert "Move them away first (nothing was changed)" in refused.value.message
    assert sorted(p.name for p in new.root.iterdir()) == ["session.key"]
    assert (new.root / "session.key").read_text() == mine + "\n"


def test_a_manifest_with_more_than_this_release_knows_is_read(tmp_path: Path) -> None:
    dd, _ = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    manifest = json.loads((Path(info.path) / MANIFEST).read_text())
    manifest["said_by_a_later_release"] = {"x": 1}
    (Path(info.path) / MANIFEST).write_text(json.dumps(manifest))
    again = backups.get(info.id)
    assert isinstance(again, BackupInfo) and again.files == info.files


def test_a_key_file_that_cannot_go_back_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    dd, _ = _host(tmp_path)
    backups = Backups(dd, dd.config())
    info = backups.create()
    vapid = tmp_path / "etc" / "vapid.pem"
    vapid.unlink()
    vapid.mkdir()  # something else is there now
    before = {p.name: p.read_bytes() for p in dd.root.iterdir() if p.is_file()}
    with pytest.raises(BackupFailed, match="nothing was changed") as refused:
        backups.restore(info.id)
    assert (
        f"the WebPush VAPID key (mobile.toml [mobile] webpush_vapid_key_file) cannot be "
        f"written at {vapid}" in refused.value.message
    )
    assert {p.name: p.read_bytes() for p in dd.root.iterdir() if p.is_file()} == before
