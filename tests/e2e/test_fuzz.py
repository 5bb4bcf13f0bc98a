"""Whatever a client sends, a running SDK answers with JSON and never a 500 (bounded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
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
    tests/e2e/test_push.py."""
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
                "^/v1/(authenticate/\\{push_id\\}|push/events)$",
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
