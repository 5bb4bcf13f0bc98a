"""Directory synchronisation against a real OpenLDAP slapd, run as an administrator runs it
(`openmfa directory sync|status|set-password`): add, rename and move (same entryUUID → same
user, methods kept), disable and remove by policy, the safety stop and --approve, nested groups,
LDAPS with a test CA, wrong passwords and filters (a clear error, nothing changed), AD
semantics (objectGUID, sAMAccountName, userPrincipalName, userAccountControl, uSNChanged)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from openmfa.sdk.client import SdkClient

from .directory_server import (
    AD_ADMIN_DN,
    AD_ADMIN_PASSWORD,
    AD_BASE,
    BASE,
    SYNC_DN,
    SYNC_PASSWORD,
    Ldap,
    directory_server,
    person,
    samba_dc,
)
from .helpers import OPENMFA, cli, free_port, init, oathtool, server
from .services import free_udp_port

pytestmark = pytest.mark.e2e
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(scope="module")
def ldap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ldap]:
    with directory_server(tmp_path_factory.mktemp("slapd")) as server:
        yield server


def node(tmp_path: Path, *sources: dict[str, Any], max_changes: int = 5) -> Path:
    """A node whose server.toml names ``sources`` (bind passwords stored with set-password)."""
    dd = tmp_path / "node"
    init(dd)
    text = f"\n[directory]\nmax_changes = {max_changes}\n"
    for s in sources:
        text += "\n[[directory.sources]]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in s.items() if k != "password"
        )
    with (dd / "server.toml").open("a") as f:
        f.write(text)
    for s in sources:
        set_password(dd, s["name"], s.get("password", SYNC_PASSWORD))
    return dd


def set_password(dd: Path, name: str, password: str) -> None:
    proc = subprocess.run(
        [OPENMFA, "directory", "set-password", name, "--password-stdin", "--data-dir", str(dd)],
        input=password + "\n", capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def sync(dd: Path, *args: str, expect: int = 0) -> dict[str, Any]:
    """One run, its JSON report for the (only) source."""
    proc = cli(dd, "directory", "sync", "--json", *args, expect=expect)
    (report,) = json.loads(proc.stdout)
    return dict(report)


def users(dd: Path) -> dict[str, dict[str, Any]]:
    return {u["name"]: u for u in json.loads(cli(dd, "user", "list", "--json").stdout)}


def ou(ldap: Ldap, name: str) -> str:
    dn = f"ou={name},{BASE}"
    ldap.add(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n")
    return dn


def source(name: str, ldap: Ldap, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": ldap.url, "bind_dn": SYNC_DN, **extra}


def test_add_rename_move_disable_safety_stop(ldap: Ldap, tmp_path: Path) -> None:
    root = ou(ldap, "corp")
    staff, moved = ou_child(ldap, "staff", root), ou_child(ldap, "moved", root)
    ldap.add(
        person("alice", staff, mail="alice@example.org", mobile="+31 6 12345678")
        + "\n"
        + person("bob", staff)
        + "\n"
        + person("carol", staff)
    )
    dd = node(tmp_path, source("corp", ldap, base_dns=[root]), max_changes=2)
    dry = sync(dd, "--dry-run")
    assert dry["counts"]["added"] == 3 and dry["applied"] is False
    assert {c["user"] for c in dry["changes"] if c["action"] == "add"} == {"alice", "bob", "carol"}
    assert users(dd) == {}  # a dry run changes nothing
    table = cli(dd, "directory", "sync", "--dry-run").stdout
    assert "would change: 3 added" in table and "add      alice" in table

    first = sync(dd)
    assert (first["mode"], first["counts"]["added"], first["applied"]) == ("full", 3, True)
    found = users(dd)
    assert found["alice"]["email"] == "alice@example.org"
    assert found["alice"]["phone"] == "+31 6 12345678"
    assert found["alice"]["display_name"] == "Alice"
    cli(dd, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")

    # A rename and a move to another OU: the same entryUUID, so the same user, methods kept.
    ldap.rename(f"uid=alice,{staff}", "uid=alicia", moved)
    renamed = sync(dd)
    assert renamed["mode"] == "incremental"
    assert [(c["action"], c["user"]) for c in renamed["changes"]] == [("update", "alice")]
    now = users(dd)
    assert "alice" not in now and now["alicia"]["email"] == "alice@example.org"
    assert cli(dd, "verify", "alicia", oathtool("--totp", "-b", SEED)).returncode == 0

    # Someone deleted there is disabled here (the default), methods kept.
    ldap.delete(f"uid=bob,{staff}")
    gone = sync(dd)
    assert [(c["action"], c["user"]) for c in gone["changes"]] == [("disable", "bob")]
    assert users(dd)["bob"]["enabled"] is False

    # The safety stop: three more would be disabled, more than max_changes = 2.
    for uid in ("dave", "erin", "frank"):
        ldap.add(person(uid, staff))
    sync(dd)
    for uid in ("dave", "erin", "frank"):
        ldap.delete(f"uid={uid},{staff}")
    stopped = sync(dd, expect=1)
    assert stopped["stopped"] is True and "--approve" in stopped["error"]
    assert all(users(dd)[u]["enabled"] for u in ("dave", "erin", "frank"))  # nothing changed
    status = cli(dd, "directory", "status").stdout
    assert "stopped" in status and "max_changes" in status
    approved = sync(dd, "--approve")
    assert approved["counts"]["disabled"] == 3
    assert not any(users(dd)[u]["enabled"] for u in ("dave", "erin", "frank"))
    # Back in the directory (a new entry with the same name is a new person there: a
    # conflict, reported, not merged with the disabled user who had the name).
    ldap.add(person("dave", staff))
    back = sync(dd)
    assert back["counts"]["conflicts"] == 1 and "dave" in back["changes"][0]["detail"]
    status = json.loads(cli(dd, "directory", "status", "--json").stdout)[0]["state"]
    assert status["result"] == "ok" and status["mode"] == "incremental"
    audit = cli(dd, "audit").stdout
    assert "directory.sync" in audit and "directory.rename" in audit


def ou_child(ldap: Ldap, name: str, parent: str) -> str:
    dn = f"ou={name},{parent}"
    ldap.add(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n")
    return dn


def test_nested_groups_and_the_remove_policy(ldap: Ldap, tmp_path: Path) -> None:
    root = ou(ldap, "groups-test")
    for uid in ("gina", "hank", "ivan", "outsider"):
        ldap.add(person(uid, root))
    team, staff = f"cn=team,{root}", f"cn=staff,{root}"
    ldap.add(
        f"dn: {team}\nobjectClass: groupOfNames\ncn: team\n"
        f"member: uid=hank,{root}\nmember: uid=ivan,{root}\nmember: {staff}\n\n"  # a loop
        f"dn: {staff}\nobjectClass: groupOfNames\ncn: staff\n"
        f"member: uid=gina,{root}\nmember: {team}\n"
    )
    dd = node(tmp_path, source("groups", ldap, group=staff, on_leave="remove"))
    first = sync(dd)
    assert first["counts"]["added"] == 3
    assert set(users(dd)) == {"gina", "hank", "ivan"}
    cli(dd, "method", "add", "ivan", "totp", "--secret", SEED, "--no-qr")
    ldap.modify(f"dn: {team}\nchangetype: modify\ndelete: member\nmember: uid=ivan,{root}\n")
    left = sync(dd)
    assert [(c["action"], c["user"]) for c in left["changes"]] == [("remove", "ivan")]
    assert set(users(dd)) == {"gina", "hank"}


def test_groups_nested_followed_each_run_and_kept_apart_from_those_set_by_hand(
    ldap: Ldap, tmp_path: Path
) -> None:
    people, groups = ou(ldap, "grp-people"), ou(ldap, "grp-groups")
    for uid in ("ann", "bob", "cid"):
        ldap.add(person(uid, people))
    admins, staff = f"cn=admins,{groups}", f"cn=staff,{groups}"
    ldap.add(
        f"dn: {admins}\nobjectClass: groupOfNames\ncn: admins\n"
        f"member: uid=bob,{people}\nmember: {staff}\n\n"  # a loop: staff holds admins
        f"dn: {staff}\nobjectClass: groupOfNames\ncn: staff\nmember: {admins}\n\n"
        f"dn: cn=vpn,{groups}\nobjectClass: groupOfNames\ncn: vpn\n"
        f"member: uid=ann,{people}\nmember: {staff}\n\n"  # staff, so admins and bob too
        f"dn: cn=ops,{groups}\nobjectClass: groupOfUniqueNames\ncn: ops\n"
        f"uniqueMember: uid=cid,{people}\n"
    )
    dd = node(
        tmp_path,
        source("grp", ldap, base_dns=[people], groups=True, group_base_dns=[groups]),
    )
    first = sync(dd)
    assert first["counts"]["added"] == 3 and first["counts"]["groups"] == 3, first
    found = users(dd)
    assert found["ann"]["directory_groups"] == ["vpn"]
    assert found["bob"]["directory_groups"] == ["admins", "staff", "vpn"]
    assert found["cid"]["directory_groups"] == ["ops"]
    cli(dd, "user", "group", "add", "ann", "helpdesk")
    shown = cli(dd, "user", "show", "ann").stdout
    assert "groups:       helpdesk, vpn\n  by hand:    helpdesk\n  directory:  vpn\n" in shown
    refused = cli(dd, "user", "group", "remove", "bob", "admins", expect=1)
    assert "because their directory says so" in refused.stderr
    # ann leaves vpn in the directory: her entry is unchanged (no modifyTimestamp of hers), and
    # an incremental run still follows the group; the group set by hand stays.
    ldap.modify(
        f"dn: cn=vpn,{groups}\nchangetype: modify\ndelete: member\nmember: uid=ann,{people}\n"
    )
    second = sync(dd)
    assert second["mode"] == "incremental", second
    assert [(c["action"], c["user"], c["detail"]) for c in second["changes"]] == [
        ("groups", "ann", "-vpn")
    ]
    found = users(dd)
    assert found["ann"]["groups"] == ["helpdesk"] and found["ann"]["directory_groups"] == []
    assert found["bob"]["directory_groups"] == ["admins", "staff", "vpn"]
    assert sync(dd)["counts"]["groups"] == 0  # nothing changed: nothing written


def test_ldaps_starttls_and_clear_errors(ldap: Ldap, tmp_path: Path) -> None:
    root = ou(ldap, "tls")
    ldap.add(person("jane", root))
    secure = source("tls", ldap, base_dns=[root], ca_file=str(ldap.ca_file))
    secure["url"] = ldap.ldaps_url
    dd = node(tmp_path, secure)
    assert sync(dd)["counts"]["added"] == 1
    before = (dd / "openmfa.db").stat().st_mtime_ns, users(dd)

    def refused(**change: Any) -> str:
        text = (dd / "server.toml").read_text()
        for key, value in change.items():
            lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
            text = "\n".join(lines) + f"\n{key} = {json.dumps(value)}\n"
        (dd / "server.toml").write_text(text)
        report = sync(dd, expect=1)
        assert report["applied"] is False and users(dd) == before[1]
        return str(report["error"])

    ca = str(ldap.ca_file)
    assert "certificate" in refused(ca_file="")  # the system CAs do not know the test CA
    starttls = refused(url=ldap.url, start_tls=True, ca_file=ca, user_filter="(uid=jane")
    assert "filter" in starttls and "user_filter" in starttls
    assert "base DN" in refused(user_filter="", base_dns=[f"ou=nowhere,{BASE}"])
    assert "cannot reach" in refused(url="ldap://127.0.0.1:9", base_dns=[root])
    set_password(dd, "tls", "not-the-password")
    wrong = refused(url=ldap.url, start_tls=True)
    assert (
        "refused to bind" in wrong and "set-password" in wrong and "not-the-password" not in wrong
    )
    set_password(dd, "tls", SYNC_PASSWORD)
    assert sync(dd)["error"] == ""  # StartTLS with the test CA: fine again
    audit = cli(dd, "audit").stdout  # the failed runs were recorded, with their reasons
    assert len(re.findall(r"directory\.sync\s+error", audit)) == 5, audit


def ad_user(sam: str, root: str, *, usn: int, disabled: bool = False, guid: str = "") -> str:
    raw = uuid.UUID(guid).bytes_le if guid else uuid.uuid4().bytes_le
    import base64

    return (
        f"dn: cn={sam},{root}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: {sam}\n"
        f"sn: {sam}\nsAMAccountName: {sam}\nuserPrincipalName: {sam}@example.test\n"
        f"objectCategory: person\nuserAccountControl: {514 if disabled else 512}\n"
        f"uSNChanged: {usn}\nmail: {sam}@example.test\n"
        f"objectGUID:: {base64.b64encode(raw).decode()}\n"
    )


def test_active_directory_semantics(ldap: Ldap, tmp_path: Path) -> None:
    """An AD-like schema on slapd: objectGUID (binary, as a UUID), sAMAccountName,
    userPrincipalName, userAccountControl's disabled bit, uSNChanged for incremental runs."""
    root = ou(ldap, "ad")
    guid = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    ldap.add(
        ad_user("kim", root, usn=100, guid=guid)
        + "\n"
        + ad_user("lee", root, usn=101, disabled=True)
    )
    dd = node(
        tmp_path,
        source("ad", ldap, kind="ad", base_dns=[root]),
    )
    first = sync(dd)
    assert first["counts"]["added"] == 2
    found = users(dd)
    assert found["kim"]["enabled"] is True and found["lee"]["enabled"] is False
    state = json.loads(cli(dd, "directory", "status", "--json").stdout)[0]["state"]
    assert state["cursor"] == "101"
    # userAccountControl 512 → 514 with a new uSNChanged: an incremental run disables kim.
    ldap.modify(
        f"dn: cn=kim,{root}\nchangetype: modify\nreplace: userAccountControl\n"
        "userAccountControl: 514\n-\nreplace: uSNChanged\nuSNChanged: 102\n"
    )
    second = sync(dd)
    assert second["mode"] == "incremental"
    assert [(c["action"], c["user"]) for c in second["changes"]] == [("disable", "kim")]
    # The same people by userPrincipalName instead: a second node, names as UPNs.
    dd2 = node(
        tmp_path / "upn",
        source("ad", ldap, kind="ad", base_dns=[root], name_attribute="userPrincipalName"),
    )
    sync(dd2)
    assert set(users(dd2)) == {"kim@example.test", "lee@example.test"}


AD_PEOPLE = "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE)))"
"""AD's people without its built-in accounts (Administrator, Guest, krbtgt)."""


def test_a_real_active_directory(tmp_path: Path) -> None:
    """Samba as an AD domain controller: objectGUID, sAMAccountName (and userPrincipalName),
    the disabled bit of userAccountControl, a rename (same objectGUID: same user, method
    kept), nested AD groups (the people of one, and the groups people are in), and incremental
    runs by uSNChanged."""
    with samba_dc(tmp_path / "samba") as dc:
        users_dn = f"CN=Users,{AD_BASE}"
        kim = ["--mail-address=kim@example.test", "--given-name=Kim", "--surname=Park"]
        dc.tool("user", "create", "kim", "Passw0rd!k1", *kim, "--telephone-number=+31612345678")
        dc.tool("user", "create", "lee", "Passw0rd!l1")
        dc.tool("user", "disable", "lee")
        ad = {
            "name": "ad",
            "kind": "ad",
            "url": dc.url,
            "ca_file": str(dc.ca_file),
            "bind_dn": AD_ADMIN_DN,
            "base_dns": [users_dn],
            "user_filter": AD_PEOPLE,
            "password": AD_ADMIN_PASSWORD,
        }
        dd = node(tmp_path, ad)
        first = sync(dd)
        assert first["mode"] == "full" and first["counts"]["added"] == 2, first
        found = users(dd)
        assert found["kim"]["display_name"] == "Kim Park" and found["kim"]["enabled"]
        assert found["kim"]["email"] == "kim@example.test"
        assert found["kim"]["phone"] == "+31612345678"
        assert found["lee"]["enabled"] is False  # userAccountControl: ACCOUNTDISABLE
        cli(dd, "method", "add", "kim", "totp", "--secret", SEED, "--no-qr")
        # Renamed in AD (same objectGUID): the same user here, with the method.
        dc.tool("user", "rename", "kim", "--samaccountname=kpark")
        dc.tool("user", "enable", "lee")
        second = sync(dd)
        assert second["mode"] == "incremental"
        assert sorted((c["action"], c["user"]) for c in second["changes"]) == [
            ("update", "kim"),
            ("update", "lee"),
        ]
        now = users(dd)
        assert "kim" not in now and now["lee"]["enabled"] is True
        assert cli(dd, "verify", "kpark", oathtool("--totp", "-b", SEED)).returncode == 0
        # Nested AD groups: staff holds team, team holds lee; by group, userPrincipalName.
        dc.tool("group", "add", "team")
        dc.tool("group", "add", "staff")
        dc.tool("group", "addmembers", "team", "lee")
        dc.tool("group", "addmembers", "staff", "team")
        by_group = {
            **ad,
            "base_dns": [],
            "group": f"CN=staff,{users_dn}",
            "name_attribute": "userPrincipalName",
            "groups": True,  # and the groups they are in, nested resolved from member values
            "group_base_dns": [users_dn],
        }
        dd2 = node(tmp_path / "by-group", by_group)
        assert sync(dd2)["counts"]["added"] == 1
        assert set(users(dd2)) == {"lee@example.test"}
        assert users(dd2)["lee@example.test"]["directory_groups"] == ["staff", "team"]


def test_a_farm_syncs_on_its_master_only_and_a_promoted_master_takes_over(
    ldap: Ldap, tmp_path: Path
) -> None:
    """Inside `serve`: the master runs the schedule (at once, never having run), a subordinate
    gets the people by replication and refuses a run by hand; after `farm promote` the new
    master runs it (it knows the last run from the replicated state) and the old one stops."""
    root = ou(ldap, "farm")
    ldap.add(person("mia", root) + "\n" + person("noah", root))
    a, b = tmp_path / "a", tmp_path / "b"
    node(a.parent / "a-setup", source("farm", ldap, base_dns=[root]))
    (a.parent / "a-setup" / "node").rename(a)
    name_node(a, "node-a")
    ports = {n: free_port() for n in "ab"}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    with ExitStack() as nodes:
        nodes.enter_context(server(a, port=ports["a"]))
        out = cli(a, "farm", "init", "--url", urls["a"]).stdout
        token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
        eventually("the master's first run", lambda: {"mia", "noah"} <= set(users(a)))
        b.mkdir()
        (b / "server.toml").write_text((a / "server.toml").read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", urls["a"], "--token", token, "--url", urls["b"])
        nodes.enter_context(server(b, port=ports["b"]))
        eventually("mia on node-b", lambda: "mia" in users(b))
        refused = cli(b, "directory", "sync", expect=1)
        assert "subordinate" in refused.stderr and urls["a"] in refused.stderr
        state = json.loads(cli(b, "directory", "status", "--json").stdout)[0]["state"]
        assert state["node"] == "node-a" and state["result"] == "ok"

        ldap.add(person("olga", root))
        cli(a, "farm", "promote", "node-b")
        eventually("the new master's run", lambda: "olga" in users(b), seconds=60)
        eventually("olga replicated to node-a", lambda: "olga" in users(a))
        state = json.loads(cli(a, "directory", "status", "--json").stdout)[0]["state"]
        assert state["node"] == "node-b"


def name_node(dd: Path, name: str) -> None:
    cfg = dd / "server.toml"
    cfg.write_text(cfg.read_text().replace('node_name = ""', f'node_name = "{name}"'))


def eventually(what: str, check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.3)


def test_the_directory_is_the_first_factor_for_radius_and_the_portal(
    ldap: Ldap, tmp_path: Path
) -> None:
    """`[ldap] source` names the source: a synchronised person's directory password, then
    their code — over RADIUS (judged by radclient) and the portal's sign-in (the SDK)."""
    root = ou(ldap, "first-factor")
    ldap.add(person("pia", root, password="pia-directory-pw"))
    dd = node(
        tmp_path, source("ff", ldap, base_dns=[root], start_tls=True, ca_file=str(ldap.ca_file))
    )
    cfg = dd / "server.toml"
    text = cfg.read_text().replace("\n[ldap]\n", '\n[ldap]\nsource = "ff"\n', 1)
    cfg.write_text(text + '\n[portal]\nprimary = "ldap"\n')
    sync(dd)
    cli(dd, "method", "add", "pia", "totp", "--secret", SEED, "--no-qr")
    secret = "radius-secret-1"
    cli(dd, "radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", secret,
        "--primary", "ldap", "--combined", "yes")  # fmt: skip
    portal_key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    udp = free_udp_port()
    with server(dd, radius=f"127.0.0.1:{udp}") as srv, SdkClient(srv.url, portal_key) as p:
        assert p.portal_sign_in("pia", "wrong").reason == "wrong_password"
        assert p.portal_sign_in("pia", "pia-directory-pw").accepted

        def radius(password: str) -> str:
            proc = subprocess.run(
                ["radclient", "-t", "3", "-r", "2", f"127.0.0.1:{udp}", "auth", secret],
                input=f'User-Name = "pia"\nUser-Password = "{password}"\n'
                "Message-Authenticator = 0x00\n",
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            return proc.stdout

        code = oathtool("--totp", "-b", SEED)
        assert "Access-Reject" in radius("not-the-pw" + code)
        assert "Access-Accept" in radius("pia-directory-pw" + code)
