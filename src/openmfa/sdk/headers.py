"""The headers an SDK call carries besides the API key: a portal user's session token, and where
the person's browser is (the portal says it on its sign-in calls and on the calls whose change
the person is told of: ``node.notify``).
"""

from __future__ import annotations

__all__ = ["ADDRESS_HEADER", "AGENT_HEADER", "SESSION_HEADER"]

SESSION_HEADER = "X-OpenMFA-Session"
"""Where portal calls about the signed-in user carry their session token."""
ADDRESS_HEADER = "X-OpenMFA-Client-Address"
"""Where a portal's sign-in calls, and its calls that change a person's methods or password, say
the browser's address (kept, sealed, with the audit rows). A header, not a body field: a node of
an older release ignores it."""
AGENT_HEADER = "X-OpenMFA-Client-Agent"
"""Where a portal's sign-in calls pass the browser's user agent (the node keeps only its
browser's and system's names)."""


def _origin(address: str, agent: str) -> dict[str, str]:
    """A call's headers saying where the browser is ("" values are not sent)."""
    headers = {}
    if address:
        headers[ADDRESS_HEADER] = _header_text(address, 64)
    if agent:
        headers[AGENT_HEADER] = _header_text(agent, 512)
    return headers


def _header_text(text: str, limit: int) -> str:
    """Printable ASCII of at most ``limit`` characters (what a header can carry as is)."""
    return "".join(c for c in text[:limit] if " " <= c <= "~")
