"""What the portal sends of a remembered browser's cookie (``portal.pages.remembered``): the
token with a first step, except where an OpenID Connect application asks for a fresh sign-in
(``prompt=login``, ``max_age``) or the cookie is not a token; the box only where the node
offered it, never at a re-authentication."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from openmfa.portal.pages import remembered
from openmfa.portal.sessions import Session
from openmfa.sdk.models import PortalStep

COOKIE = "openmfa-portal-remember"


def ctx(cookie: str, oidc: dict[str, str] | None = None, reauth: bool = False) -> Any:
    s = Session("sid", "csrf", 0.0, 0.0, reauth=reauth)
    if oidc is not None:
        s.oidc_request = "/oidc/authorize?" + urlencode(oidc)
    portal = SimpleNamespace(remember_cookie=lambda request: COOKIE)
    request = SimpleNamespace(cookies={COOKIE: cookie} if cookie else {})
    return SimpleNamespace(session=s, portal=portal, request=request)


def test_the_token_goes_with_a_first_step_unless_a_fresh_sign_in_is_asked() -> None:
    token = "A" * 43
    assert remembered.token_to_send(ctx(token)) == token
    assert remembered.token_to_send(ctx("")) == ""
    assert remembered.token_to_send(ctx("not a token!")) == ""
    assert remembered.token_to_send(ctx("x" * 129)) == ""
    app = {"client_id": "wiki", "scope": "openid"}
    assert remembered.token_to_send(ctx(token, app)) == token
    assert remembered.token_to_send(ctx(token, {**app, "prompt": "consent login"})) == ""
    assert remembered.token_to_send(ctx(token, {**app, "max_age": "300"})) == ""


def test_the_box_is_offered_only_as_the_node_said_and_never_at_a_re_authentication() -> None:
    offered = PortalStep(accepted=True, reason="ok", ticket="t", remember_minutes=1440)
    c = ctx("")
    remembered.offered(c, offered)
    assert c.session.remember_minutes == 1440
    again = ctx("", reauth=True)
    remembered.offered(again, offered)
    assert again.session.remember_minutes == 0
