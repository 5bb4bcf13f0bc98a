"""A real ``openmfa serve`` process, spoken to over HTTP like any SDK client would."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import signal
import ssl
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from openmfa.sdk.openapi import ROUTES
from openmfa.store.database import DATA_FORMAT, READS_FORMATS

from .helpers import Server, cli, init, oathtool, server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Server]]:
    dd = tmp_path_factory.mktemp("sdk") / "node"
    token = init(dd)
    with server(dd) as srv:
        yield dd, token, srv


def client(srv: Server, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=10)


def counts(srv: Server, token: str) -> tuple[int, int]:
    """(users, audit events) as the node reports them."""
    with client(srv, token) as c:
        users = len(c.get("/v1/users", params={"limit": 1000}).json()["users"])
        audit = len(c.get("/v1/audit", params={"limit": 1000}).json()["events"])
    return users, audit


def test_health_ready_version(node: tuple[Path, str, Server]) -> None:
    _, _, srv = node
    assert httpx.get(srv.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(srv.url + "/readyz").json() == {"status": "ready"}
    v = httpx.get(srv.url + "/version").json()
    assert v["data_format"] == DATA_FORMAT and v["reads_formats"] == list(READS_FORMATS)
    assert v["release"]
    assert httpx.get(srv.url + "/healthz").headers["x-request-id"]


def test_enroll_and_authenticate_over_the_sdk(node: tuple[Path, str, Server]) -> None:
    _, token, srv = node
    with client(srv, token) as c:
        r = c.post("/v1/users", json={"name": "sdk-alice", "email": "a@example.org"})
        assert r.status_code == 201 and r.json()["name"] == "sdk-alice"
        r = c.post("/v1/users/sdk-alice/methods", json={"kind": "totp"})
        assert r.status_code == 201
        enrolled = r.json()
        assert enrolled["otpauth_uri"].startswith("otpauth://totp/")
        code = oathtool("--totp", "-b", enrolled["secret"])
        r = c.post(
            "/v1/authenticate",
            json={"user": "sdk-alice", "code": code},
            headers={"X-Request-ID": "req-42"},
        )
        assert r.json()["accepted"] is True and r.json()["request_id"] == "req-42"
        again = c.post("/v1/authenticate", json={"user": "sdk-alice", "code": code}).json()
        assert again["accepted"] is False and again["reason"] == "replay"
        assert (
            c.post("/v1/authenticate", json={"user": "ghost", "code": "1"}).json()["reason"]
            == "unknown_user"
        )
        listed = c.get("/v1/users/sdk-alice/methods").json()["methods"]
        assert [m["kind"] for m in listed] == ["totp"] and "secret" not in listed[0]
        events = c.get("/v1/audit", params={"user": "sdk-alice"}).json()["events"]
        auths = [e for e in events if e["action"] == "authenticate"]
        assert auths[0]["request_id"] == "req-42" and auths[0]["client"] == "admin"
        assert code not in json.dumps(events)


def test_user_crud_bypass_unlock_resync(node: tuple[Path, str, Server]) -> None:
    _, token, srv = node
    with client(srv, token) as c:
        assert c.post("/v1/users", json={"name": "sdk-bob"}).status_code == 201
        assert c.post("/v1/users", json={"name": "sdk-bob"}).json()["code"] == "conflict"
        r = c.patch("/v1/users/sdk-bob", json={"display_name": "Bob", "enabled": False})
        assert r.json()["display_name"] == "Bob" and r.json()["enabled"] is False
        assert c.patch("/v1/users/sdk-bob", json={"enabled": True}).json()["enabled"] is True
        seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        m = c.post("/v1/users/sdk-bob/methods", json={"kind": "hotp", "secret": seed}).json()
        far = oathtool("--hotp", "-b", "-c", "40", "-w", "1", seed).split()
        r = c.post(
            f"/v1/users/sdk-bob/methods/{m['method']['id']}/resync",
            json={"first": far[0], "second": far[1]},
        )
        assert r.json() == {"resynchronised": True}
        nxt = oathtool("--hotp", "-b", "-c", "42", seed)
        assert c.post("/v1/authenticate", json={"user": "sdk-bob", "code": nxt}).json()["accepted"]
        assert c.post("/v1/users/sdk-bob/bypass", json={"seconds": 60}).status_code == 200
        assert c.post("/v1/authenticate", json={"user": "sdk-bob"}).json()["reason"] == "bypass"
        for _ in range(10):
            c.post("/v1/authenticate", json={"user": "sdk-bob", "code": "000000"})
        assert c.get("/v1/users/sdk-bob").json()["locked_until"] is not None
        assert c.post("/v1/users/sdk-bob/unlock").json()["locked_until"] is None
        assert c.delete(f"/v1/users/sdk-bob/methods/{m['method']['id']}").status_code == 204
        assert c.delete("/v1/users/sdk-bob").status_code == 204
        assert c.get("/v1/users/sdk-bob").status_code == 404


BAD_REQUESTS = [
    ("post", "/v1/authenticate", b"{not json", 400, "malformed_request"),
    ("post", "/v1/authenticate", b'{"user": 5, "code": "1"}', 422, "invalid_input"),
    ("post", "/v1/authenticate", b'{"user": "a", "code": "1", "x": 1}', 422, "invalid_input"),
    ("post", "/v1/authenticate", b'{"code": "1"}', 422, "invalid_input"),
    ("post", "/v1/authenticate", b"[]", 422, "invalid_input"),
    ("post", "/v1/authenticate", b'{"user": "' + b"a" * 300 + b'"}', 422, "invalid_input"),
    ("post", "/v1/authenticate", b"\xff\xfe", 400, "malformed_request"),
    ("post", "/v1/users", b'{"name": ""}', 422, "invalid_input"),
    ("post", "/v1/users", b'{"name": "a\\u0000b"}', 422, "invalid_input"),
    ("post", "/v1/users/nobody/methods", b'{"kind": "totp"}', 404, "not_found"),
    ("post", "/v1/users/admin-x/methods", b'{"kind": "sms"}', 422, "invalid_input"),
    ("post", "/v1/users/nobody/bypass", b'{"seconds": -1}', 422, "invalid_input"),
    ("get", "/v1/users?limit=abc", b"", 422, "invalid_input"),
    ("get", "/v1/audit?since=tomorrow", b"", 422, "invalid_input"),
    ("get", "/v1/users/nobody", b"", 404, "not_found"),
    ("get", "/v1/nothing", b"", 404, "no_such_route"),
    ("delete", "/v1/authenticate", b"", 405, "method_not_allowed"),
    ("patch", "/v1/users/nobody", b'{"name": "x"}', 422, "invalid_input"),
]


@pytest.mark.parametrize(("verb", "path", "body", "status", "code"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    node: tuple[Path, str, Server], verb: str, path: str, body: bytes, status: int, code: str
) -> None:
    _, token, srv = node
    before = counts(srv, token)
    with client(srv, token) as c:
        r = c.request(verb.upper(), path, content=body or None)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["code"] == code and err["message"] and err["request_id"]
    assert counts(srv, token) == before


def test_huge_bodies_are_refused(node: tuple[Path, str, Server]) -> None:
    _, token, srv = node
    before = counts(srv, token)
    huge = b'{"user": "' + b"a" * 200_000 + b'"}'
    with client(srv, token) as c:
        r = c.post("/v1/authenticate", content=huge)
        assert r.status_code == 413 and r.json()["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            for _ in range(100):
                yield b"x" * 10_000

        r = c.post("/v1/users", content=chunks())
        assert r.status_code == 413
    assert counts(srv, token) == before


def test_every_route_checks_the_caller_before_reading_the_body(
    node: tuple[Path, str, Server],
) -> None:
    """A caller without a valid key is refused (401) before its body is read: a huge or
    broken body from a stranger costs the node nothing and says nothing about the route."""
    _, _, srv = node
    huge = b'{"user": "' + b"a" * 200_000 + b'"}'
    routes = [
        ("POST", "/v1/authenticate"),
        ("POST", "/v1/users"),
        ("PATCH", "/v1/users/alice"),
        ("POST", "/v1/users/alice/bypass"),
        ("POST", "/v1/users/alice/methods"),
        ("POST", "/v1/users/alice/methods/m1/resync"),
    ]
    for key in (None, "omfa_000000000000_" + "A" * 43):
        with client(srv, key) as c:
            for verb, path in routes:
                for content in (huge, b"{not json"):
                    r = c.request(verb, path, content=content)
                    assert r.status_code == 401, (verb, path, r.text)
                    assert r.json()["code"] == "unauthorized"
    portal = cli(node[0], "apikey", "create", "portal-body", "--scope", "portal").stdout.strip()
    with client(srv, portal) as c:  # a good key of the wrong scope: 403, body unread
        assert c.post("/v1/users", content=huge).status_code == 403


def test_api_keys_wrong_revoked_expired_and_scoped(node: tuple[Path, str, Server]) -> None:
    dd, token, srv = node
    body = {"user": "nobody", "code": "123456"}
    before = counts(srv, token)
    for bad in (None, "nonsense", token + "x", "omfa_000000000000_" + "A" * 43):
        with client(srv, bad) as c:
            r = c.post("/v1/authenticate", json=body)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized"
            assert c.get("/v1/users").status_code == 401
    adapter = cli(dd, "apikey", "create", "adapter-1", "--scope", "adapter").stdout.strip()
    with client(srv, adapter) as c:
        assert c.post("/v1/authenticate", json=body).status_code == 200
        r = c.post("/v1/users", json={"name": "should-not-exist"})
        assert r.status_code == 403 and "scope 'adapter'" in r.json()["message"]
        assert c.get("/v1/audit").status_code == 403
        assert c.post("/v1/users/nobody/bypass", json={"seconds": 5}).status_code == 403
    mobile = cli(dd, "apikey", "create", "mobile-1", "--scope", "mobile").stdout.strip()
    with client(srv, mobile) as c:
        assert c.post("/v1/authenticate", json=body).status_code == 403
    # Revoked from the CLI while the server runs: refused from the next request on.
    cli(dd, "apikey", "revoke", "adapter-1")
    with client(srv, adapter) as c:
        r = c.post("/v1/authenticate", json=body)
        assert r.status_code == 401 and "revoked" in r.json()["message"]
    short = cli(
        dd, "apikey", "create", "short", "--scope", "admin", "--expires-days", "0.00001"
    ).stdout.strip()
    time.sleep(1.2)
    with client(srv, short) as c:
        r = c.get("/v1/users")
        assert r.status_code == 401 and "expired" in r.json()["message"]
    users, _ = counts(srv, token)
    assert users == before[0]


def test_cli_changes_are_seen_without_restart(node: tuple[Path, str, Server]) -> None:
    dd, token, srv = node
    cli(dd, "user", "add", "cli-carol")
    secret = cli(dd, "method", "add", "cli-carol", "totp", "--no-qr").stdout
    seed = next(ln.split()[1] for ln in secret.splitlines() if ln.startswith("secret:"))
    with client(srv, token) as c:
        assert c.get("/v1/users/cli-carol").status_code == 200
        code = oathtool("--totp", "-b", seed)
        assert c.post("/v1/authenticate", json={"user": "cli-carol", "code": code}).json()[
            "accepted"
        ]
        cli(dd, "user", "disable", "cli-carol")
        code2 = oathtool("--totp", "-b", seed, "-N", "+30 seconds")
        r = c.post("/v1/authenticate", json={"user": "cli-carol", "code": code2}).json()
        assert r["reason"] == "disabled"
        cli(dd, "bypass", "cli-carol", "--seconds", "30")
        cli(dd, "user", "enable", "cli-carol")
        assert c.post("/v1/authenticate", json={"user": "cli-carol"}).json()["reason"] == "bypass"


def test_concurrent_copies_of_one_code_pass_once(node: tuple[Path, str, Server]) -> None:
    _, token, srv = node
    with client(srv, token) as c:
        c.post("/v1/users", json={"name": "race"})
        seed = c.post("/v1/users/race/methods", json={"kind": "totp"}).json()["secret"]
    code = oathtool("--totp", "-b", seed)

    def attempt(_: int) -> bool:
        with client(srv, token) as c:
            result: bool = c.post("/v1/authenticate", json={"user": "race", "code": code}).json()[
                "accepted"
            ]
            return result

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(32)))
    assert results.count(True) == 1


def test_openapi_document_lists_every_route(node: tuple[Path, str, Server]) -> None:
    _, _, srv = node
    doc = httpx.get(srv.url + "/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for verb, path, *_ in ROUTES:
        assert verb in doc["paths"][path]
    schemas = doc["components"]["schemas"]
    assert schemas["AuthenticateRequest"]["required"] == ["user"]
    ref = doc["paths"]["/v1/authenticate"]["post"]["requestBody"]["content"]["application/json"]
    assert ref["schema"]["$ref"].endswith("/AuthenticateRequest")


def test_sigterm_is_a_graceful_shutdown(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    with server(dd) as srv:
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0
    assert "Application shutdown complete" in srv.log.read_text()


def test_refuses_a_data_file_from_a_newer_release(tmp_path: Path) -> None:
    import sqlite3

    dd = tmp_path / "node"
    init(dd)
    db = sqlite3.connect(dd / "openmfa.db")
    with db:
        db.execute("UPDATE meta SET value=? WHERE key='data_format'", (str(DATA_FORMAT + 1),))
    db.close()
    digest = hashlib.sha256((dd / "openmfa.db").read_bytes()).hexdigest()
    proc = cli(dd, "serve", "--listen", "127.0.0.1:1", expect=1)
    assert f"data format {DATA_FORMAT + 1}" in proc.stderr
    assert "newer OpenMFA release" in proc.stderr
    assert hashlib.sha256((dd / "openmfa.db").read_bytes()).hexdigest() == digest


def test_refuses_a_corrupt_key_file(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    (dd / "openmfa.key").write_text("garbage\n")
    proc = cli(dd, "serve", expect=1)
    assert "key file" in proc.stderr and "corrupt" in proc.stderr
    assert "garbage" not in proc.stderr


def test_port_in_use_is_explained(node: tuple[Path, str, Server], tmp_path: Path) -> None:
    _, _, srv = node
    dd = tmp_path / "other"
    init(dd)
    port = srv.url.rsplit(":", 1)[1]
    proc = cli(dd, "serve", "--listen", f"127.0.0.1:{port}", expect=1)
    assert "could not listen" in proc.stderr


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_when_a_certificate_is_configured(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    cert, key = _self_signed(tmp_path)
    cfg = dd / "server.toml"
    cfg.write_text(
        cfg.read_text()
        .replace('tls_cert = ""', f'tls_cert = "{cert}"')
        .replace('tls_key = ""', f'tls_key = "{key}"')
    )
    trust = ssl.create_default_context(cafile=str(cert))
    with server(dd, scheme="https", verify=trust) as srv:
        r = httpx.get(
            srv.url + "/v1/users", verify=trust, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(srv.url.replace("https", "http") + "/healthz")


def test_no_secret_in_the_server_log(node: tuple[Path, str, Server]) -> None:
    _, token, srv = node
    with client(srv, token) as c:
        c.post("/v1/users", json={"name": "log-check"})
        seed = c.post("/v1/users/log-check/methods", json={"kind": "totp"}).json()["secret"]
        code = oathtool("--totp", "-b", seed)
        c.post("/v1/authenticate", json={"user": "log-check", "code": code})
    text = srv.log.read_text()
    assert token not in text and token.split("_", 2)[2] not in text
    assert seed not in text and base64.b32decode(seed + "=" * (-len(seed) % 8)).hex() not in text
    assert code not in text


@pytest.mark.postgres
def test_serve_on_postgresql(pg_node_dir: Path) -> None:
    dd = pg_node_dir
    token = init(dd)
    assert not (dd / "openmfa.db").exists()
    cli(dd, "user", "add", "pg-alice")
    seed = next(
        ln.split()[1]
        for ln in cli(dd, "method", "add", "pg-alice", "totp", "--no-qr").stdout.splitlines()
        if ln.startswith("secret:")
    )
    with server(dd) as srv, client(srv, token) as c:
        code = oathtool("--totp", "-b", seed)
        assert c.post("/v1/authenticate", json={"user": "pg-alice", "code": code}).json()[
            "accepted"
        ]
        assert (
            c.post("/v1/authenticate", json={"user": "pg-alice", "code": code}).json()["reason"]
            == "replay"
        )
        assert "replay" in cli(dd, "verify", "pg-alice", code, expect=1).stdout
        assert c.get("/readyz").json() == {"status": "ready"}
    assert "PostgreSQL" in cli(dd, "init", "--force", expect=1).stderr


@pytest.mark.postgres
def test_readyz_never_waits_for_the_store(pg_node_dir: Path) -> None:
    """A load balancer's health check is answered at once, from memory: while another
    transaction holds the tables a readiness check reads (as a schema change on a shared
    database holds what it alters), /readyz still answers instead of queueing behind the lock
    until the balancer gives up on it."""
    dd = pg_node_dir
    init(dd)
    url = tomllib.loads((dd / "server.toml").read_text())["store"]["url"]
    with server(dd) as srv, psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE meta, alembic_version IN ACCESS EXCLUSIVE MODE")
        r = httpx.get(srv.url + "/readyz", timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ready"}
        conn.rollback()
