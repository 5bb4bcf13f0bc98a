"""Every request builder is a route of the SDK's OpenAPI document, and says what it says.

Each ``Requests`` builder is called with a placeholder for each of its text parameters
(``"{name}"``), so its path comes back as the route's template: the builder's (method, path)
must be an operation of ``openmfa.sdk.openapi.document()``, with the same answer type, body,
session header and query parameters. A route of the document that no builder calls must be
named in ``WITHOUT_BUILDER``, so a new route is noticed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from openmfa.sdk import Call, Requests, models
from openmfa.sdk.calls_console import ConsoleRequests
from openmfa.sdk.calls_oidc import OidcRequests
from openmfa.sdk.calls_privacy import PrivacyRequests
from openmfa.sdk.headers import SESSION_HEADER
from openmfa.sdk.openapi import document

WITHOUT_BUILDER: set[tuple[str, str]] = set()
"""Routes of the document that no builder calls (``Requests``, the administration console's
``ConsoleRequests``, ``OidcRequests`` or ``PrivacyRequests``)."""

UNDOCUMENTED_QUERY: dict[tuple[str, str], set[str]] = {}
"""Query parameters a builder sends (and the route reads) that the document does not list yet.
Once the document lists one, its entry here goes (the test says so)."""

SAMPLES: dict[str, Any] = {
    "int": 0,
    "bytes": b"serial,secret\n",
    "list[str]": [],
    "list[tuple[str, str]]": [],
    "Literal['totp', 'hotp', 'backup-codes']": "totp",
    "ComponentReport": models.ComponentReport(
        name="portal1", kind="portal", release="1", sdk_versions=[1]
    ),
    "OidcCodeRequest": models.OidcCodeRequest(
        client_id="c", redirect_uri="https://app/cb", code_challenge="x" * 43
    ),
    "OidcTokenRequest": models.OidcTokenRequest(
        code="c", client_id="c", redirect_uri="https://app/cb", code_verifier="v" * 43
    ),
    "OidcEamStart": models.OidcEamStart(
        client_id="c", redirect_uri="https://entra/cb", id_token_hint="h"
    ),
}
"""A value for each kind of required parameter that is not text (by its annotation)."""


def built() -> Iterator[tuple[str, Call[Any]]]:
    """Each builder's call, text parameters set to ``{their name}``."""
    builders = {
        **vars(Requests),
        **vars(ConsoleRequests),
        **vars(OidcRequests),
        **vars(PrivacyRequests),
    }
    for name, builder in sorted(builders.items()):
        if name.startswith("_"):
            continue
        args = {}
        for p in inspect.signature(builder.__func__).parameters.values():
            if p.default is not inspect.Parameter.empty:
                continue
            args[p.name] = "{" + p.name + "}" if p.annotation == "str" else SAMPLES[p.annotation]
        yield name, builder.__func__(**args)


CALLS = dict(built())


def operation(call: Call[Any]) -> dict[str, Any]:
    ops: dict[str, Any] = document()["paths"].get(unquote(call.path), {})
    assert call.method.lower() in ops, f"no route {call.method} {unquote(call.path)}"
    return ops[call.method.lower()]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_builder_is_a_route_of_the_document(name: str) -> None:
    call = CALLS[name]
    op = operation(call)
    success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
    if call.answer is None:
        assert list(success) == ["204"], success
    else:
        [answer] = success.values()
        ref = answer["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{call.answer.__name__}"
    assert (call.body is not None) == ("requestBody" in op)
    params = op.get("parameters", [])
    headers = {p["name"] for p in params if p["in"] == "header"}
    assert (SESSION_HEADER in call.headers) == (SESSION_HEADER in headers)
    query = {p["name"] for p in params if p["in"] == "query"}
    known = UNDOCUMENTED_QUERY.get((call.method, unquote(call.path)), set())
    assert set(call.params) - query == known, f"{name}: the document's query: {query}"


def test_every_route_has_a_builder_or_is_named() -> None:
    routes = {
        (method.upper(), path)
        for path, ops in document()["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }
    called = {(c.method, unquote(c.path)) for c in CALLS.values()}
    assert routes - called == WITHOUT_BUILDER  # (so each named one is still a route)


def test_a_placeholder_is_quoted_like_any_value() -> None:
    """The check relies on builders quoting each path segment: ``{x}`` comes back whole."""
    assert Requests.get_user("{name}").path == "/v1/users/%7Bname%7D"
    assert Requests.get_user("a/b").path == "/v1/users/a%2Fb"
