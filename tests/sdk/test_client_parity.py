"""The synchronous and asynchronous SDK clients offer the same calls and send them the same way.

Both are thin senders around ``Requests`` and ``Plan.flow``; these tests catch a method added
to one client only (``AsyncSdkClient`` once lacked the token-inventory calls), a parameter
that differs, a builder no client offers, and a send loop that takes another way through the
nodes than its twin.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from openmfa.sdk import AsyncSdkClient, Requests, SdkClient, models
from openmfa.sdk.errors import NotFound

LIFECYCLE = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
"""Where the two clients differ by design: how they are closed."""

NOT_ROUTES = {"send"}
"""Client methods that are not one builder's route."""

BUILDERS_WITHOUT_METHOD = {"health"}
"""Builders no client method wraps (``send(Requests.health())`` asks for them)."""


def public(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def shape(method: Callable[..., Any], *, annotations: bool = True) -> list[tuple[Any, ...]]:
    """Each parameter's name, kind, default (and annotation), and the return annotation."""
    sig = inspect.signature(method)
    params = [
        (p.name, p.kind, p.default, p.annotation if annotations else None)
        for p in sig.parameters.values()
    ]
    return [*params, ("return", sig.return_annotation if annotations else None)]


def parity_problems(sync: type, asynchronous: type) -> list[str]:
    """What differs between the two clients' calls, said plainly (empty: nothing)."""
    problems = []
    lifecycle = set(LIFECYCLE) | set(LIFECYCLE.values())
    names, anames = public(sync) - lifecycle, public(asynchronous) - lifecycle
    for missing in sorted(names - anames):
        problems.append(f"{asynchronous.__name__} lacks {missing}")
    for missing in sorted(anames - names):
        problems.append(f"{sync.__name__} lacks {missing}")
    for name in sorted(names & anames):
        s, a = getattr(sync, name), getattr(asynchronous, name)
        if inspect.iscoroutinefunction(s) or not inspect.iscoroutinefunction(a):
            problems.append(f"{name}: sync must be plain, async a coroutine function")
        if shape(s) != shape(a):
            problems.append(f"{name}: {inspect.signature(s)} != {inspect.signature(a)}")
    for plain, awaited in LIFECYCLE.items():
        if not (hasattr(sync, plain) and hasattr(asynchronous, awaited)):
            problems.append(f"{plain}/{awaited} missing")
    # The constructors differ only in the transport's type (a sync or an async one).
    inits = [shape(vars(c)["__init__"], annotations=False) for c in (sync, asynchronous)]
    if inits[0] != inits[1]:
        problems.append(f"__init__: {inspect.signature(sync)} != {inspect.signature(asynchronous)}")
    return problems


def test_both_clients_offer_the_same_calls_with_the_same_parameters() -> None:
    assert parity_problems(SdkClient, AsyncSdkClient) == []


def copy_of(cls: type, *, drop: str = "", **replace: object) -> type:
    """``cls`` again, under its own name, with one method dropped or replaced."""
    own = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__", drop)}
    return type(cls.__name__, (), {**own, **replace})


def test_the_parity_check_sees_a_missing_or_different_method() -> None:
    """The check itself: a client lacking a method, or with a parameter changed, is caught."""

    async def list_tokens(
        self: object, *, unassigned: bool = True, limit: int = 100, after: str = ""
    ) -> list[models.TokenView]:
        return []

    assert parity_problems(SdkClient, copy_of(AsyncSdkClient)) == []
    lacking = copy_of(AsyncSdkClient, drop="remove_token")
    assert parity_problems(SdkClient, lacking) == ["AsyncSdkClient lacks remove_token"]
    different = copy_of(AsyncSdkClient, list_tokens=list_tokens)
    [problem] = parity_problems(SdkClient, different)
    assert problem.startswith("list_tokens: (self, *, unassigned: 'bool' = False")


def test_every_builder_is_a_method_of_both_clients() -> None:
    builders = {n for n in vars(Requests) if not n.startswith("_")}
    builders |= {"export_user", "erase_user"}  # sdk.calls_privacy's, beside Requests
    methods = public(SdkClient) - set(LIFECYCLE) - NOT_ROUTES
    assert sorted(builders - methods) == sorted(BUILDERS_WITHOUT_METHOD)
    assert sorted(methods - builders) == []  # each method is one builder's route


# -- the one send loop, driven by both senders ---------------------------------------------

VERSION = msgspec.json.encode(
    models.VersionInfo(release="1", data_format=1, writes_format=1, reads_formats=[1, 1], node="n")
)
ALICE = msgspec.json.encode(
    models.UserView(
        name="alice", display_name="", email="", phone="", enabled=True, created_at=1,
        updated_at=1,
    )
)  # fmt: skip


def farm(log: list[tuple[str, str, str]]) -> Callable[[httpx.Request], httpx.Response]:
    """Three nodes: ``a`` is down, ``b`` a subordinate, ``m`` the master."""

    def node(request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        log.append((request.method, f"{host}{path}", request.headers.get("x-request-id", "")))
        if host == "a":
            raise httpx.ConnectError("refused", request=request)
        if path == "/version":
            return httpx.Response(200, content=VERSION)
        if request.method == "GET" and path == "/v1/users/alice":
            return httpx.Response(200, content=ALICE)
        if request.method == "GET":
            body = {"code": "not_found", "message": "no such user", "request_id": "r"}
            return httpx.Response(404, content=msgspec.json.encode(body))
        if host == "b":
            body = {
                "code": "not_master",
                "message": "m",
                "request_id": "r",
                "master_url": "http://m/",
            }
            return httpx.Response(409, content=msgspec.json.encode(body))
        return httpx.Response(201, content=ALICE)

    return node


CALLS = [
    (Requests.create_user("alice"), "w1"),
    (Requests.unlock_user("alice"), "w2"),
    (Requests.get_user("alice"), "r1"),
]


def sync_run(log: list[tuple[str, str, str]]) -> list[models.UserView | str]:
    seen: list[models.UserView | str] = []
    with SdkClient(["http://a", "http://b"], "k", transport=httpx.MockTransport(farm(log))) as c:
        for call, rid in CALLS:
            user = c.send(call, request_id=rid)
            seen.append(user)
        with pytest.raises(NotFound) as missing:
            c.send(Requests.get_user("bob"), request_id="r2")
        seen.append(missing.value.message)
    return seen


def async_run(log: list[tuple[str, str, str]]) -> list[models.UserView | str]:
    async def main() -> list[models.UserView | str]:
        seen: list[models.UserView | str] = []
        transport = httpx.MockTransport(farm(log))
        async with AsyncSdkClient(["http://a", "http://b"], "k", transport=transport) as c:
            for call, rid in CALLS:
                user = await c.send(call, request_id=rid)
                seen.append(user)
            with pytest.raises(NotFound) as missing:
                await c.send(Requests.get_user("bob"), request_id="r2")
            seen.append(missing.value.message)
        return seen

    return asyncio.run(main())


def test_both_senders_take_the_same_way_through_the_nodes() -> None:
    """A write fails over from a node that is down, follows the subordinate's not_master to
    the master (same request id), and later writes go there straight away; each node's
    version is read once, before its first /v1/ call; errors raise their class."""
    sync_log: list[tuple[str, str, str]] = []
    async_log: list[tuple[str, str, str]] = []
    assert sync_run(sync_log) == async_run(async_log)
    assert sync_log == async_log
    assert sync_log == [
        ("GET", "a/version", ""),  # down: the write never reached it, so b is asked
        ("GET", "b/version", ""),
        ("POST", "b/v1/users", "w1"),  # not_master: to m
        ("GET", "m/version", ""),
        ("POST", "m/v1/users", "w1"),
        ("POST", "m/v1/users/alice/unlock", "w2"),  # writes now go to the master first
        ("GET", "b/v1/users/alice", "r1"),  # reads: the listed node that answered last
        ("GET", "b/v1/users/bob", "r2"),
    ]
