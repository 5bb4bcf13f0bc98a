"""The registry of a host's key files: what server.toml and the services' files beside it name,
resolved as each service resolves it."""

from __future__ import annotations

import json
import tomllib
from importlib import import_module, resources
from pathlib import Path

import pytest

from openmfa.install.record import InstallRecord
from openmfa.node.control import SERVE_RECORD, Invocation
from openmfa.store.database import DataDir
from openmfa.store.key_files import (
    DATA_KEY,
    RELEASE_KEYS,
    SERVICE_CONFIGS,
    SERVICE_KEYS,
    find,
)


def _dd(tmp_path: Path, server: str = "") -> DataDir:
    dd = DataDir(tmp_path / "node")
    dd.root.mkdir()
    (dd.root / "server.toml").write_text(server)
    return dd


def test_every_key_file_setting_the_services_ship_is_in_the_registry() -> None:
    """A ``*key_file`` setting added to a shipped file later fails here until it is registered
    (and so backed up)."""
    registered = {(n.service, n.section, n.setting) for n in SERVICE_KEYS}
    shipped = set()
    for service, module in SERVICE_CONFIGS.items():
        for section, values in tomllib.loads(import_module(module).default_text()).items():
            shipped |= {(service, section, k) for k in values if k.endswith("key_file")}
    assert shipped == registered
    node = tomllib.loads(resources.files("openmfa").joinpath("default_server.toml").read_text())
    assert [k for k in node["server"] if "key" in k] == ["tls_key"]  # find() reads it


def test_the_key_files_of_a_data_directory_and_where_each_belongs(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    dd = _dd(
        tmp_path,
        f'[server]\ntls_cert = "{elsewhere}/tls.pem"\ntls_key = "{elsewhere}/tls.key"\n'
        '[portal]\nenabled = true\nweb_config = "web.toml"\n',
    )
    (dd.root / "portal.toml").write_text(
        '[portal]\napi_key_file = "portal.key"\nsession_key_file = "keys/session.key"\n'
        '[forward_auth]\nenabled = true\nkey_file = "forward-auth.key"\n'
    )
    (dd.root / "web.toml").write_text(
        '[portal]\napi_key_file = "ignored.key"\n[forward_auth]\nenabled = true\n'
        'key_file = "serve-forward-auth.key"\n'
    )
    (dd.root / "mobile.toml").write_text(
        f'[mobile]\napi_key_file = "mobile.key"\nwebpush_vapid_key_file = "{elsewhere}/vapid.pem"\n'
    )
    (dd.root / "adapter.toml").write_text('[adapter]\napi_key_file = "../adapter.key"\n')
    root = tmp_path / "opt"
    root.mkdir()
    (root / "trusted-release-keys").write_text("openmfa-release-key-v1:x\n")
    found = find(dd, dd.config(), install_root=root)
    where = {k.id: (k.belongs, k.path) for k in found.keys}
    node = dd.root.absolute()
    assert where == {
        DATA_KEY: ("openmfa.key", node / "openmfa.key"),
        "server-tls-key": (str(elsewhere / "tls.key"), elsewhere / "tls.key"),
        "portal-api-key": ("portal.key", node / "portal.key"),
        "portal-session-key": ("keys/session.key", node / "keys/session.key"),
        "portal-forward-auth-key": ("forward-auth.key", node / "forward-auth.key"),
        "mobile-api-key": ("mobile.key", node / "mobile.key"),
        "mobile-vapid-key": (str(elsewhere / "vapid.pem"), elsewhere / "vapid.pem"),
        # Beside adapter.toml, but outside the data directory: it stays where it is.
        "adapter-api-key": (str(tmp_path / "adapter.key"), tmp_path / "adapter.key"),
        # The portal inside `openmfa serve` (its API key lives in memory: none to keep).
        "serve-portal-forward-auth-key": (
            "serve-forward-auth.key",
            node / "serve-forward-auth.key",
        ),
        RELEASE_KEYS: (str(root / "trusted-release-keys"), root / "trusted-release-keys"),
    }
    assert [p.name for p in found.configs] == [
        "server.toml",
        "portal.toml",
        "mobile.toml",
        "adapter.toml",
    ]
    assert found.notes == []
    # The shipped forward-auth key name, with forward-auth off: only kept if the file is there.
    (dd.root / "portal.toml").write_text('[portal]\napi_key_file = "portal.key"\n')
    assert "portal-forward-auth-key" not in {k.id for k in find(dd, dd.config()).keys}
    (dd.root / "forward-auth.key").write_text("ab" * 32)
    (kept,) = [k for k in find(dd, dd.config()).keys if k.id == "portal-forward-auth-key"]
    assert not kept.used and kept.what.startswith("the forward-auth key (portal.toml")


def test_a_relative_tls_key_is_where_the_node_opened_it(tmp_path: Path) -> None:
    dd = _dd(tmp_path, '[server]\ntls_cert = "tls.pem"\ntls_key = "tls/node.key"\n')
    (key,) = [k for k in find(dd, dd.config()).keys if k.id == "server-tls-key"]
    assert key.path == dd.root.absolute() / "tls/node.key"  # no record of a start: beside the data
    ran = tmp_path / "srv"
    ran.mkdir()
    Invocation(pid=1, argv=["serve"], cwd=str(ran), env={}, url="").save(dd.root / SERVE_RECORD)
    (key,) = [k for k in find(dd, dd.config()).keys if k.id == "server-tls-key"]
    assert key.path == ran / "tls/node.key" and key.belongs == str(ran / "tls/node.key")


def test_the_release_keys_of_the_installation_that_records_this_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dd = _dd(tmp_path)
    root = tmp_path / "opt"
    root.mkdir()
    (root / "trusted-release-keys").write_text("openmfa-release-key-v1:x\n")
    record = tmp_path / "install.toml"
    monkeypatch.setenv("OPENMFA_INSTALL_RECORD", str(record))
    assert RELEASE_KEYS not in {k.id for k in find(dd, dd.config()).keys}  # no record
    InstallRecord(str(root), "0.3.0", ["server"], str(tmp_path / "other")).save(record)
    assert RELEASE_KEYS not in {k.id for k in find(dd, dd.config()).keys}  # not this data
    InstallRecord(str(root), "0.3.0", ["server"], str(dd.root)).save(record)
    (kept,) = [k for k in find(dd, dd.config()).keys if k.id == RELEASE_KEYS]
    assert kept.path == root / "trusted-release-keys" and not kept.inside


def test_an_unreadable_service_file_is_a_note_that_shows_none_of_its_values(
    tmp_path: Path,
) -> None:
    dd = _dd(tmp_path)
    secret = "omfa_not-to-be-printed"
    (dd.root / "mobile.toml").write_text(f'[mobile]\napi_keyy = "{secret}"\n')
    found = find(dd, dd.config())
    assert [k.id for k in found.keys] == [DATA_KEY]
    (note,) = found.notes
    assert str(dd.root / "mobile.toml") in note and secret not in json.dumps(note)
