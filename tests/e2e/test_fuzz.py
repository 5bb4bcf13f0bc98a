"""Whatever a client sends, a running SDK answers with JSON and never a 500 (bounded)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .helpers import cli, init, server

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "user",
    "code",
    "name",
    "kind",
    "secret",
    "digits",
    "period",
    "algorithm",
    "label",
    "seconds",
    "first",
    "second",
    "display_name",
    "email",
    "phone",
    "enabled",
    "method",
    "source",
    "alg",
    "public_key",
    "payload",
    "signature",
    "webpush",
    "password",
    "ticket",
]
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5)
    .map(json.dumps)
    .map(str.encode),
    json_values.map(json.dumps).map(str.encode),
    st.binary(max_size=200),
)
PATHS = [
    "/v1/authenticate",
    "/v1/users",
    "/v1/users/fuzz",
    "/v1/users/fuzz/methods",
    "/v1/users/fuzz/bypass",
    "/v1/users/fuzz/unlock",
    "/v1/users/fuzz/methods/x/resync",
    "/v1/users/%00/methods",
    "/v1/audit",
    "/v1/authenticate/p0",
    "/v1/users/fuzz/devices",
    "/v1/users/fuzz/devices/activation",
    "/v1/users/fuzz/devices/d0",
    "/v1/devices",
    "/v1/devices/poll",
    "/v1/push/answer",
    "/v1/push/events",
    "/v1/portal/sign-in",
    "/v1/portal/second-factor",
    "/v1/portal/me",
    "/v1/portal/me/password",
]


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    dd = tmp_path_factory.mktemp("fuzz") / "node"
    token = init(dd)
    cli(dd, "user", "add", "fuzz")
    with (
        server(dd) as srv,
        httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as client,
    ):
        yield client
        assert "Traceback" not in srv.log.read_text()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(PATHS),
    verb=st.sampled_from(["POST", "PATCH", "GET", "DELETE"]),
    body=bodies,
    query=st.text(max_size=20),
)
def test_no_input_makes_a_500(
    sdk: httpx.Client, path: str, verb: str, body: bytes, query: str
) -> None:
    params = {"since": query, "limit": query, "wait": query[:2], "after": query}
    r = sdk.request(verb, path, content=body, params=params)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code != 204:
        payload = r.json()
        if r.status_code >= 400:
            assert payload["code"] and payload["message"]


def test_the_openapi_document_is_true(tmp_path: Path) -> None:
    """schemathesis, driven by the node's own OpenAPI document, with every check: a request the
    document calls valid is accepted, one it calls invalid is refused, every answer matches
    its schema, a 405 carries Allow. Bounded: fixed seed, 40 examples per operation. The two
    long-polls (a push's outcome, the push events) hold their answer up to ``wait`` seconds by
    design, past schemathesis's response-time limit: they are left to the fuzz above and to
    tests/e2e/test_push.py. A token file's import is left out too: what makes a file
    acceptable (PSKC, CSV) is no schema's to say, so every file schemathesis makes up is a
    well-formed request refused 422, which it counts against the document; its refusals are
    tests/console/test_console_admin.py's and tests/e2e/test_tokens.py's."""
    import os
    import subprocess
    import sys

    dd = tmp_path / "node"
    token = init(dd)
    with server(dd) as srv:
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{srv.url}/v1/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                "40",
                "--seed",
                "20261202",
                "--workers",
                "1",
                "--no-color",
                "--exclude-path-regex",
                "^/v1/(authenticate/\\{push_id\\}|push/events|tokens/import)$",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,  # its cache (.schemathesis/) is the run's, not the checkout's
        )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # Clean: no failure, no error (a warning that an operation found no data, such as revoking
    # a device of a node that has none, is not a finding).
    import re

    summary = re.search(r"^=+ (.*) in [\d.]+s =+$", proc.stdout, re.M)
    assert summary is not None, proc.stdout[-3000:]
    assert re.fullmatch(r"No issues found|\d+ warnings?", summary.group(1)), proc.stdout[-3000:]


# -- RADIUS: MS-CHAPv2 and EAP attributes -----------------------------------------------------

RADIUS_SECRET = b"fuzz-radius-secret"
MS_TYPES = st.sampled_from([1, 2, 7, 8, 11, 12, 16, 17, 25, 26, 28, 99])


def _ms_sub(vtype: int, value: bytes, fix: bool) -> bytes:
    return bytes((vtype, len(value) + 2 if fix else (len(value) * 7 + 3) % 256)) + value


ms_vsas = st.builds(
    lambda subs, fix, vendor: vendor.to_bytes(4, "big") + b"".join(_ms_sub(*s, fix) for s in subs),
    st.lists(st.tuples(MS_TYPES, st.binary(max_size=60)), min_size=0, max_size=3),
    st.booleans(),
    st.sampled_from([311, 311, 311, 9, 0]),
)
"""Vendor-Specific values: Microsoft's (mostly), of any sub-attribute, lengths right or not."""

mschap_pairs = st.builds(
    lambda challenge, response, ident: [
        b"\0\0\x017" + _ms_sub(11, challenge, True),
        b"\0\0\x017" + _ms_sub(25, bytes((ident,)) + response, True),
    ],
    st.binary(min_size=16, max_size=16) | st.binary(max_size=20),
    st.binary(min_size=49, max_size=49) | st.binary(max_size=60),
    st.integers(0, 255),
)
"""An MS-CHAP-Challenge and MS-CHAP2-Response, of the right sizes (relayed upstream) or not."""


def _eap(code: int, ident: int, kind: int, body: bytes, length: int | None) -> bytes:
    whole = bytes((code, ident)) + b"\0\0" + bytes((kind,)) + body
    n = len(whole) if length is None else length
    return whole[:2] + (n % 65536).to_bytes(2, "big") + whole[4:]


eap_messages = st.one_of(
    st.builds(
        _eap,
        st.sampled_from([2, 2, 2, 1, 3, 4, 0, 6]),
        st.integers(0, 255),
        st.sampled_from([1, 3, 13, 21, 25, 26, 254]),
        st.binary(max_size=600),
        st.sampled_from([None, None, None, 0, 3, 4, 65535]) | st.integers(0, 70000),
    ),
    st.binary(max_size=300),
)
"""EAP packets (a Response/Identity, PEAP, TTLS, TLS, ...) of right or wrong Length, or noise."""


def _radius_request(
    ident: int,
    user: bytes | None,
    vsas: list[bytes],
    eap: bytes | None,
    state: bytes | None,
    extra: list[tuple[int, bytes]],
) -> bytes:
    from openmfa.radius import packet as p

    attrs: list[tuple[int, bytes]] = []
    if user is not None:
        attrs.append((p.USER_NAME, user))
    attrs += [(26, v[:253]) for v in vsas if len(v) >= 1]
    if eap is not None:
        attrs += [(79, eap[i : i + 253]) for i in range(0, len(eap), 253)] or [(79, b"")]
    if state is not None:
        attrs.append((p.STATE, state))
    attrs += extra
    return p.encode_request(p.ACCESS_REQUEST, ident, attrs, RADIUS_SECRET)


radius_requests = st.builds(
    _radius_request,
    st.integers(0, 255),
    st.none() | st.sampled_from([b"alice", b"anonymous", b"\xff\xfe"]) | st.binary(max_size=20),
    st.lists(ms_vsas, max_size=3) | mschap_pairs,
    st.none() | eap_messages,
    st.none() | st.binary(min_size=1, max_size=40),
    st.lists(st.tuples(st.sampled_from([5, 12, 30, 31, 32, 61, 77]), st.binary(max_size=20)),
             max_size=3),
)  # fmt: skip


@dataclass
class RadiusNode:
    dd: Path
    port: int
    seed: str
    log: Path


@pytest.fixture(scope="module")
def radius_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadiusNode]:
    from .freeradius_upstream import freeradius_upstream
    from .helpers import secret_of
    from .services import free_udp_port

    base = tmp_path_factory.mktemp("fuzz-radius")
    with freeradius_upstream(base / "upstream", {"alice": "alice-pw"}) as up:
        dd = base / "node"
        dd.mkdir()
        (dd / "server.toml").write_text(
            f'[radius_upstream]\naddress = "127.0.0.1:{up.port}"\nsecret = "{up.secret}"\n'
            "timeout_seconds = 1\n"
        )
        init(dd)
        secret = RADIUS_SECRET.decode()
        cli(dd, "radius", "client", "add", "relay", "--address", "127.0.0.1", "--secret", secret,
            "--primary", "radius", "--push", "hold", "--hold-seconds", "1", "--mschap", "yes",
            "--eap", "relay")  # fmt: skip
        cli(dd, "radius", "client", "add", "pap", "--address", "127.0.0.2", "--secret", secret)
        for user in ("alice", "paula"):  # (alice may well be locked by the fuzz)
            cli(dd, "user", "add", user)
        seed = secret_of(cli(dd, "method", "add", "paula", "totp", "--no-qr").stdout)
        port = free_udp_port()
        with server(dd, radius=f"127.0.0.1:{port}") as srv:
            yield RadiusNode(dd, port, seed, srv.log)
            assert "Traceback" not in srv.log.read_text()


def _ask(port: int, raw: bytes, source: str = "127.0.0.1", wait: float = 8) -> bytes | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(wait)
        s.sendto(raw, ("127.0.0.1", port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=radius_requests)
@example(raw=_radius_request(1, b"alice", [], _eap(2, 0, 1, b"alice", None), None, []))
@example(raw=_radius_request(2, b"alice", [], _eap(2, 1, 25, b"\x00", None), b"x" * 16, []))
@example(
    raw=_radius_request(
        3,
        b"alice",
        [b"\0\0\x017" + _ms_sub(11, bytes(16), True), b"\0\0\x017" + _ms_sub(25, bytes(50), True)],
        None,
        None,
        [],
    )
)
def test_no_mschap_or_eap_attribute_crashes_radius_or_opens_it(
    radius_node: RadiusNode, raw: bytes
) -> None:
    """Whatever MS-CHAP and EAP attributes a well-signed request carries: a signed answer (the
    upstream is asked, or not), never an Access-Accept (no push was approved)."""
    from openmfa.radius import packet as p

    answer = _ask(radius_node.port, raw)
    assert answer is not None, raw.hex()
    reply = p.verify_response(answer, raw[4:20], RADIUS_SECRET)
    assert reply.code in (p.ACCESS_REJECT, p.ACCESS_CHALLENGE), (reply.code, raw.hex())


def test_radius_still_answers_pap_after_the_fuzz(radius_node: RadiusNode) -> None:
    """Run after the fuzz above (file order): a right code over PAP is still accepted."""
    import subprocess

    from openmfa.radius import packet as p

    code = subprocess.run(
        ["oathtool", "--totp", "-b", radius_node.seed], capture_output=True, text=True, check=True
    ).stdout.strip()
    auth = os.urandom(16)
    hidden = p.hide_password(code.encode(), RADIUS_SECRET, auth)
    attrs = [(p.USER_NAME, b"paula"), (p.USER_PASSWORD, hidden)]
    raw = p.encode_request(p.ACCESS_REQUEST, 1, attrs, RADIUS_SECRET, auth)
    answer = _ask(radius_node.port, raw, source="127.0.0.2")
    assert answer is not None
    assert p.verify_response(answer, auth, RADIUS_SECRET).code == p.ACCESS_ACCEPT
