"""Signed calls from one farm node to another (sync for the CLI and the authenticator's thread,
async for the server's background tasks)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx

from ..errors import PeerError
from .signing import sign


def _prepare(
    key: bytes,
    node: str,
    base_url: str,
    method: str,
    path: str,
    params: dict[str, Any] | None,
    body: Any,
) -> tuple[str, bytes, dict[str, str]]:
    target = path + ("?" + urlencode(params) if params else "")
    content = json.dumps(body).encode() if body is not None else b""
    headers = sign(key, node, method, target, content)
    if body is not None:
        headers["content-type"] = "application/json"
    return base_url.rstrip("/") + target, content, headers


def call(
    key: bytes,
    node: str,
    base_url: str,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    url, content, headers = _prepare(key, node, base_url, method, path, params, body)
    if client is not None:
        return client.request(method, url, content=content, headers=headers)
    return httpx.request(method, url, content=content, headers=headers, timeout=timeout)


async def acall(
    client: httpx.AsyncClient,
    key: bytes,
    node: str,
    base_url: str,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> httpx.Response:
    url, content, headers = _prepare(key, node, base_url, method, path, params, body)
    return await client.request(method, url, content=content, headers=headers)


def refused(resp: httpx.Response) -> str:
    """The error message a node answered with."""
    try:
        return str(resp.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}"


def checked(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code != 200:
        raise PeerError(f"{what}: {refused(resp)}")
    data: dict[str, Any] = resp.json()
    return data
