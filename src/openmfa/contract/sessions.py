"""Where a person is signed in (``/v1/portal/me/seen``, ``/v1/portal/me/sessions``): what a
portal host reports of a signed-in browser, and the list the person sees."""

from __future__ import annotations

from typing import Annotated

import msgspec


class PortalSeen(msgspec.Struct, kw_only=True):
    """A portal host's report of the signed-in browser whose session token goes with it (at
    most once a minute per browser): its address, its user agent, the node session ids it
    held before this one (re-authentications), oldest first, and the person's language."""

    address: Annotated[str, msgspec.Meta(max_length=64)] = ""
    user_agent: Annotated[str, msgspec.Meta(max_length=512)] = ""
    earlier: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
        msgspec.Meta(max_length=16),
    ] = []
    language: Annotated[
        str, msgspec.Meta(max_length=16, pattern="^([a-z]{2,3}(-[A-Za-z0-9]{1,8})?)?$")
    ] = ""
    """The language the person reads the portal in (``nl``): the node sends their security
    notices in it (data format 10; "" says nothing). A node of an older release ignores it."""


class CookieSeen(msgspec.Struct, kw_only=True):
    """A forward-auth cookie a portal host let through: whose, and which node session it
    carries."""

    user: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    session: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PortalCookiesSeen(msgspec.Struct, kw_only=True):
    """A portal host's forward-auth reports (``/v1/portal/sessions/seen``): the sessions whose
    cookies it let through since its last report, each at most once a minute."""

    seen: Annotated[list[CookieSeen], msgspec.Meta(max_length=500)]


class SessionSeen(msgspec.Struct, kw_only=True):
    """The report taken: the session's id (what a sign-out ends), and how often to report."""

    session_id: str
    report_seconds: float


class SessionView(msgspec.Struct, kw_only=True):
    """One signed-in browser of the person."""

    id: str
    """Its name on the page (not a session id: it ends nothing without the person's token)."""
    current: bool
    """The browser that asks."""
    address: str
    browser: str
    """The browser's name from its user agent ("Firefox"; "" when not known)."""
    system: str
    """Its operating system ("Android"; "" when not known)."""
    first_seen: float
    last_seen: float
    expires_at: float


class SessionList(msgspec.Struct, kw_only=True):
    sessions: list[SessionView]
    """Newest seen first."""
    remembered: list[RememberedView] | None = None
    """The person's remembered browsers, newest first, so that the page needs one call (None:
    a node that does not say; then ``/v1/portal/me/remembered`` does)."""


class RememberedView(msgspec.Struct, kw_only=True):
    """One browser the person asked to be remembered (it skips the second step until then)."""

    id: str
    """Its name on the page (ends nothing without the person's session token)."""
    address: str
    browser: str
    system: str
    created_at: float
    expires_at: float


class RememberedList(msgspec.Struct, kw_only=True):
    browsers: list[RememberedView]
    """Newest first."""


__all__ = [
    "CookieSeen",
    "PortalCookiesSeen",
    "PortalSeen",
    "RememberedList",
    "RememberedView",
    "SessionList",
    "SessionSeen",
    "SessionView",
]
