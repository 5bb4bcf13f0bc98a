"""``openmfa oidc ...`` through click, in-process, against a real data directory: clients (the
secret printed once, never listed), keys (rotation publishes ahead), Entra subject mappings."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from click.testing import CliRunner, Result

from openmfa.cli import main


def openmfa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_clients_keys_and_subjects(tmp_path: Path) -> None:
    dd = str(tmp_path / "node")
    assert openmfa("init", "--data-dir", dd).exit_code == 0
    added = openmfa(
        "oidc", "client", "add", "grafana", "--redirect-uri", "https://g.example.org/cb",
        "--data-dir", dd,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    secret = re.search(r"^client_secret: (omfs_\S+)$", added.stdout, re.M)
    assert secret, added.stdout
    listed = openmfa("oidc", "client", "list", "--json", "--data-dir", dd)
    [client] = json.loads(listed.stdout)
    assert client["name"] == "grafana" and client["redirect_uris"] == ["https://g.example.org/cb"]
    assert secret.group(1) not in listed.stdout
    # The first key came with the first client, and signs at once; a rotation publishes ahead.
    keys = json.loads(openmfa("oidc", "keys", "--json", "--data-dir", dd).stdout)
    assert [k["state"] for k in keys] == ["signing"]
    rotated = openmfa("oidc", "rotate-key", "--data-dir", dd)
    assert rotated.exit_code == 0 and "published now, signs from" in rotated.stdout
    keys = json.loads(openmfa("oidc", "keys", "--json", "--data-dir", dd).stdout)
    assert sorted(k["state"] for k in keys) == ["next", "signing"]
    assert keys[1]["signs_from"] - keys[1]["created_at"] == 48 * 3600

    tenant, app = str(uuid.uuid4()), str(uuid.uuid4())
    entra = openmfa(
        "oidc", "client", "add", "entra", "--kind", "entra-eam", "--entra-tenant", tenant,
        "--entra-client-id", app, "--data-dir", dd,
    )  # fmt: skip
    assert entra.exit_code == 0 and "client_secret" not in entra.stdout, entra.output
    bad = openmfa("oidc", "client", "add", "x", "--kind", "entra-eam", "--data-dir", dd)
    assert bad.exit_code == 1 and "--entra-tenant" in bad.output

    assert openmfa("user", "add", "pia", "--data-dir", dd).exit_code == 0
    oid = str(uuid.uuid4())
    mapped = openmfa(
        "oidc", "subject", "map", "pia", "--oid", oid, "--tid", tenant, "--data-dir", dd
    )
    assert mapped.exit_code == 0, mapped.output
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"user,oid,tid\npia,{uuid.uuid4()},{tenant}\nnobody,{uuid.uuid4()},{tenant}\n")
    refused = openmfa("oidc", "subject", "import", str(csv), "--data-dir", dd)
    assert refused.exit_code == 1 and "no user named 'nobody'" in refused.output
    listed_subjects = openmfa("oidc", "subject", "list", "--data-dir", dd).stdout
    assert listed_subjects.count("pia") == 1 and oid in listed_subjects  # the import did nothing
    assert openmfa("oidc", "client", "remove", "grafana", "--data-dir", dd).exit_code == 0
    names = [
        c["name"]
        for c in json.loads(openmfa("oidc", "client", "list", "--json", "--data-dir", dd).stdout)
    ]
    assert names == ["entra"]
