"""The headers an SDK call carries besides the API key: a portal user's session token, and where
the person's browser is (the portal says it on its sign-in calls and on the calls whose change
the person is told of: ``node.notify``).
"""

from __future__ import annotations

__all__ = [
    "ADDRESS_HEADER",
    "AGENT_HEADER",
    "FOR_HEADER",
    "OPERATOR_HEADER",
    "REMEMBERED_HEADER",
    "SESSION_HEADER",
]

SESSION_HEADER = "X-OpenMFA-Session"
"""Where portal calls about the signed-in user carry their session token."""
OPERATOR_HEADER = "X-OpenMFA-Operator"
"""Where the administration console's calls carry the signed-in operator's token (from
``/v1/console/second-factor`` or ``/v1/console/passkey``), with the console's key: the call is
the operator's, as their role allows (``node.roles``)."""
ADDRESS_HEADER = "X-OpenMFA-Client-Address"
"""Where a portal's sign-in calls, and its calls that change a person's methods or password, say
the browser's address (kept, sealed, with the audit rows). A header, not a body field: a node of
an older release ignores it."""
AGENT_HEADER = "X-OpenMFA-Client-Agent"
"""Where a portal's sign-in calls pass the browser's user agent (the node keeps only its
browser's and system's names)."""
FOR_HEADER = "X-OpenMFA-Sign-In-For"
"""What a portal's first sign-in step is for, as policy rules name it: ``forward-auth`` (a site
behind the proxies), ``oidc NAME`` (the OpenID Connect client NAME); absent: the portal itself.
A header, like the address: a node of an older release ignores it."""
FOR_RE = r"^(portal|portal-change|forward-auth|oidc [A-Za-z0-9][A-Za-z0-9._-]{0,63})$"
REMEMBERED_HEADER = "X-OpenMFA-Remembered"
"""Where a portal's first sign-in step passes the token of the browser's remember cookie
(``node.remembered``). A header, like the address: a node of an older release ignores it."""
REMEMBERED_RE = r"^[A-Za-z0-9_-]{1,128}$"


def _origin(address: str, agent: str, purpose: str = "", remembered: str = "") -> dict[str, str]:
    """A call's headers saying where the browser is, and what the sign-in is for (``purpose``:
    ``FOR_HEADER``'s value; ``remembered``: ``REMEMBERED_HEADER``'s; "" values are not sent)."""
    headers = {}
    if remembered:
        headers[REMEMBERED_HEADER] = _header_text(remembered, 128)
    if purpose:
        headers[FOR_HEADER] = _header_text(purpose, 80)
    if address:
        headers[ADDRESS_HEADER] = _header_text(address, 64)
    if agent:
        headers[AGENT_HEADER] = _header_text(agent, 512)
    return headers


def _header_text(text: str, limit: int) -> str:
    """Printable ASCII of at most ``limit`` characters (what a header can carry as is)."""
    return "".join(c for c in text[:limit] if " " <= c <= "~")
