"""``directory.password`` against a real slapd, without a browser: a person's password changed
in a ``[[directory.sources]]`` source of kind ldap (found by the read-only service account,
changed as the person with RFC 3062), and through ``[ldap]``'s own settings by a search;
what cannot be done (nobody by that name, a wrong current password, a server that is down)
is ``PrimaryUnavailable``, and a directory's words are cleaned before a person sees them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from openmfa.directory.password import DirectoryPasswords, said
from openmfa.directory.sync import DirectorySync
from openmfa.errors import PrimaryUnavailable
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

from .directory_server import BASE, SYNC_DN, SYNC_PASSWORD, directory_server, person
from .helpers import free_port

PEOPLE = f"ou=people,{BASE}"
pytestmark = [
    pytest.mark.e2e,
    # ldap3 (imported in this process here, in the node's elsewhere) uses pyasn1's old names.
    pytest.mark.filterwarnings("ignore:tagMap is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:typeMap is deprecated:DeprecationWarning"),
]


def binds(url: str, uid: str, password: str) -> bool:
    proc = subprocess.run(
        ["ldapwhoami", "-x", "-H", url, "-D", f"uid={uid},{PEOPLE}", "-w", password],
        capture_output=True,
    )
    return proc.returncode == 0


def test_a_password_changed_in_a_source_and_by_ldap_settings(tmp_path: Path) -> None:
    with directory_server(tmp_path / "slapd") as ldap:
        ldap.add(f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n")
        ldap.add(person("ana", PEOPLE, password="first of ana"))
        ldap.add(person("bas", PEOPLE, password="first of bas"))
        source = {"name": "corp", "kind": "ldap", "url": ldap.url, "bind_dn": SYNC_DN,
                  "base_dns": [PEOPLE]}  # fmt: skip
        config = make_config(ldap={"source": "corp"}, directory={"sources": [source]})
        store = Store.create(DataDir(tmp_path / "node"), config)
        try:
            DirectorySync(store, config).set_password("corp", SYNC_PASSWORD)
            in_source = DirectoryPasswords(config, store)
            assert asyncio.run(in_source.change("ana", "first of ana", "second of ana")) is None
            assert binds(ldap.url, "ana", "second of ana")
            assert not binds(ldap.url, "ana", "first of ana")
            for user, current in (("nobody", "x"), ("ana", "first of ana")):
                with pytest.raises(PrimaryUnavailable):
                    asyncio.run(in_source.change(user, current, "third of ana"))
        finally:
            store.close()

        settings = {
            "url": ldap.url,
            "search_base": PEOPLE,
            "service_dn": SYNC_DN,
            "service_password": SYNC_PASSWORD,
        }
        by_search = DirectoryPasswords(make_config(ldap=settings))
        assert asyncio.run(by_search.change("bas", "first of bas", "second of bas")) is None
        assert binds(ldap.url, "bas", "second of bas")
    down = DirectoryPasswords(make_config(ldap={"url": f"ldap://127.0.0.1:{free_port()}"}))
    with pytest.raises(PrimaryUnavailable):
        asyncio.run(down.change("bas", "second of bas", "third of bas"))


def test_the_directorys_words_are_one_clean_line() -> None:
    assert said("constraintViolation", "0000052D: Constraint violation -\n too\x00 short ") == (
        "Constraint violation - too short"
    )
    assert said("insufficientAccessRights", "") == "insufficientAccessRights"
    assert said("", "") == "refused"
    assert len(said("", "x" * 500)) == 200
