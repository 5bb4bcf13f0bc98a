"""The farm's inventory of the hosts beside the nodes: a portal, a mobile service, an
administration console and an adapter host's agent (real processes on loopback) join with
`openmfa farm join-component` and their own keys, report through the SDK, and `openmfa farm
status` on the node lists them (kind, host, release, SDK versions, health, last contact). A key
of the wrong scope is refused and nothing is written; a component that stops shows as not
answering, and `farm forget-component` drops it. Every part answers `GET /metrics`."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import httpx

from openmfa import __version__

from .helpers import OPENMFA, cli, free_port, init, server, start_service, stop, wait_for


def status(dd: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(cli(dd, "farm", "status", "--json").stdout)
    return {c["name"]: c for c in doc["components"]}


def test_components_join_report_and_stop_answering(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    portal_key = cli(dd, "apikey", "create", "web", "--scope", "portal").stdout.split()[-1]
    mobile_key = cli(dd, "apikey", "create", "dmz", "--scope", "mobile").stdout.split()[-1]
    adapter_key = cli(dd, "apikey", "create", "idp", "--scope", "adapter").stdout.split()[-1]
    console_key = cli(dd, "apikey", "create", "ops", "--scope", "console").stdout.split()[-1]
    port = free_port()
    with server(dd, port=port) as srv:
        cli(dd, "farm", "init", "--url", srv.url)
        portal_port, mobile_port = free_port(), free_port()
        web = tmp_path / "web"
        web.mkdir()
        (web / "portal.key").write_text(portal_key + "\n")
        (web / "portal.key").chmod(0o600)
        (web / "portal.toml").write_text(
            f'[portal]\nlisten = "127.0.0.1:{portal_port}"\nnodes = ["{srv.url}"]\n'
            'api_key_file = "portal.key"\n'
        )
        dmz = tmp_path / "dmz"
        dmz.mkdir()
        (dmz / "mobile.toml").write_text(
            f'# the DMZ host\n[mobile]\nlisten = "127.0.0.1:{mobile_port}"\n'
            f'nodes = ["{srv.url}"]\napi_key = "{mobile_key}"\n'
        )
        # A key of another scope: refused, and the file is left as it was.
        before = (dmz / "mobile.toml").read_text()
        wrong = tmp_path / "wrong.toml"
        wrong.write_text(before.replace(mobile_key, portal_key))
        out = cli(
            tmp_path, "farm", "join-component", "--kind", "mobile", "--config", str(wrong),
            "--name", "dmz-1", expect=1,
        )  # fmt: skip
        assert "scope 'portal'" in out.stderr and "scope 'mobile'" in out.stderr, out.stderr
        assert wrong.read_text() == before.replace(mobile_key, portal_key)
        out = cli(
            tmp_path, "farm", "join-component", "--kind", "mobile", "--config",
            str(dmz / "mobile.toml"), "--name", "dmz-1",
        )  # fmt: skip
        assert "dmz-1 (mobile) is in the farm's inventory" in out.stdout, out
        text = (dmz / "mobile.toml").read_text()
        assert text.startswith("# the DMZ host") and 'name = "dmz-1"' in text
        cli(
            tmp_path, "farm", "join-component", "--kind", "portal", "--config",
            str(web / "portal.toml"), "--name", "web-1",
        )  # fmt: skip
        ops, console_port = tmp_path / "ops", free_port()
        ops.mkdir()
        (ops / "console.toml").write_text(
            f'[console]\nlisten = "127.0.0.1:{console_port}"\nnodes = ["{srv.url}"]\n'
            f'api_key = "{console_key}"\n'
        )
        cli(
            tmp_path, "farm", "join-component", "--kind", "console", "--config",
            str(ops / "console.toml"), "--name", "ops-1",
        )  # fmt: skip
        console = start_service(
            ["console", "serve", "--config", str(ops / "console.toml")],
            f"http://127.0.0.1:{console_port}/console/healthz",
            tmp_path / "console.log",
        )
        portal = start_service(
            ["portal", "serve", "--config", str(web / "portal.toml")],
            f"http://127.0.0.1:{portal_port}/portal/healthz",
            tmp_path / "portal.log",
        )
        mobile = start_service(
            ["mobile", "serve", "--config", str(dmz / "mobile.toml")],
            f"http://127.0.0.1:{mobile_port}/mobile/healthz",
            tmp_path / "mobile.log",
        )
        # An adapter host: no service of its own, so its agent reports; nginx's files are not
        # written here, and its health says so (and it needs no LemonLDAP::NG to run).
        idp = tmp_path / "idp"
        (idp / "snippets").mkdir(parents=True)
        adapter_toml = idp / "adapter.toml"
        adapter_toml.write_text(
            f'[adapter]\nnode_url = "{srv.url}"\napi_key = "{adapter_key}"\nidps = ["nginx"]\n'
            f'[nginx]\ndir = "{idp}/snippets"\n'
            '[lemonldap]\ncli = "/nonexistent/lemonldap-ng-cli"  # an nginx-only host\n'
        )
        refused = cli(tmp_path, "adapter", "agent", "--config", str(adapter_toml), expect=1)
        assert "names no host" in refused.stderr and "join-component" in refused.stderr
        cli(
            tmp_path, "farm", "join-component", "--kind", "adapter", "--config",
            str(adapter_toml), "--name", "idp-1",
        )  # fmt: skip
        assert 'name = "idp-1"' in adapter_toml.read_text()
        with (tmp_path / "agent.log").open("w") as out:
            agent = subprocess.Popen(
                [OPENMFA, "adapter", "agent", "--config", str(adapter_toml)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: {"web-1", "dmz-1", "ops-1"} <= set(status(dd)), "all report")
            seen = status(dd)
            for name, kind, url in (
                ("web-1", "portal", f"http://127.0.0.1:{portal_port}/portal"),
                ("dmz-1", "mobile", f"http://127.0.0.1:{mobile_port}/mobile"),
                ("ops-1", "console", f"http://127.0.0.1:{console_port}/console"),
            ):
                c = seen[name]
                assert c["kind"] == kind and c["url"] == url and c["release"] == __version__
                assert c["sdk_versions"] == [1] and c["health"] == "ok"
                assert c["host"] == socket.gethostname() and c["heard_by"]
            wait_for(lambda: "nginx" in str(status(dd).get("idp-1", {}).get("health")), "idp-1")
            c = status(dd)["idp-1"]
            assert c["kind"] == "adapter" and c["release"] == __version__
            assert c["health"] == "nginx: the forward-auth files are not written", c
            again = cli(tmp_path, "adapter", "agent", "--config", str(adapter_toml), expect=1)
            assert "another openmfa process" in again.stderr  # one agent per adapter.toml
            table = cli(dd, "farm", "status").stdout
            assert re.search(r"^web-1\s+portal\s", table, re.M), table
            # /metrics on every part
            for url in (
                srv.url,
                f"http://127.0.0.1:{portal_port}",
                f"http://127.0.0.1:{mobile_port}",
            ):
                assert "openmfa_build_info{" in httpx.get(url + "/metrics", timeout=10).text
            # The portal stops (cleanly: status 0 on SIGTERM, as the node): listed as not
            # answering, then forgotten on purpose.
            stop(portal)
            assert portal.returncode == 0, (tmp_path / "portal.log").read_text()
            wait_for(
                lambda: status(dd)["web-1"]["health"] == "not answering",
                "the stopped portal shows as not answering",
            )
            assert status(dd)["dmz-1"]["health"] == "ok"
            out = cli(dd, "farm", "forget-component", "web-1")
            assert "web-1 is no longer in the farm's inventory" in out.stdout
            assert set(status(dd)) == {"dmz-1", "idp-1", "ops-1"}
        finally:
            stop(console)
            stop(agent)
            stop(portal)
            stop(mobile)
