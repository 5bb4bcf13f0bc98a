"""One SDK call as a value (``Call``): method, path, query, body, headers and answer type; no
I/O. ``calls.Requests`` builds one per route; both clients send it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar
from urllib.parse import quote

import msgspec

from .headers import SESSION_HEADER, _origin

__all__ = ["Call"]

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One SDK call, fully described: what to send and what comes back. No I/O."""

    method: str
    path: str
    answer: type[T] | None
    """None: the call answers nothing (204)."""
    params: dict[str, str | int | float] = field(default_factory=dict)
    body: bytes | None = None
    kind: Literal["read", "write", "authenticate"] = "read"
    timeout: float | None = None
    """Seconds to wait for the answer (long-polls); None: the client's own timeout."""
    headers: dict[str, str] = field(default_factory=dict)
    """This call's own headers (a portal user's session token)."""

    def decode(self, content: bytes) -> T:
        if self.answer is None:
            return None  # type: ignore[return-value]
        return msgspec.json.decode(content, type=self.answer)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _mine(
    method: str, path: str, answer: type[T] | None, session: str, body: bytes | None = None,
    *, address: str = "", agent: str = "",
) -> Call[T]:  # fmt: skip
    """A portal call about the signed-in user: their session token goes with it (``address``,
    ``agent``: where the browser is, on the calls whose change is noticed: ``_origin``)."""
    headers = {SESSION_HEADER: session, **_origin(address, agent)}
    return Call(method, path, answer, body=body, kind="write", headers=headers)
