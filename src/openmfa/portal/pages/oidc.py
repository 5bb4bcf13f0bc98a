"""The OpenID Connect authorization endpoint, ``/oidc/authorize``: an application's request
(the authorization code flow with PKCE S256, OpenID Connect Core §3.1.2) or Microsoft Entra ID's
external authentication method (a POSTed ``response_type=id_token``: :mod:`.oidc_eam`).

The node decides and signs; this page parses the request, has the node check its client and
redirect URI before anything else (an unknown client or an unregistered redirect URI is an
error page: nothing is ever sent to an address the client did not register), sends a person
without a session through the portal's own sign-in (password, then a code, push or passkey),
and comes back here — the only return address a sign-in takes is this endpoint, kept in the
session by this page, never read from the browser. Other errors go back to the application
as ``error`` and ``state`` (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.datastructures import FormData, QueryParams
from starlette.responses import RedirectResponse, Response

from ...errors import (
    AccessDenied,
    InvalidClient,
    InvalidInput,
    NotFound,
    OAuthRefused,
    Unauthorized,
)
from ...sdk.models import OidcClientChecked, OidcCodeRequest
from ..runner import Ctx, PageError
from ..sessions import Session

AUTHORIZE = "/oidc/authorize"
PARAMS = {
    "client_id": 64,
    "redirect_uri": 2000,
    "response_type": 64,
    "response_mode": 64,
    "scope": 1000,
    "state": 2000,
    "nonce": 255,
    "code_challenge": 128,
    "code_challenge_method": 16,
    "prompt": 128,
    "max_age": 16,
    "login_hint": 255,
    "ui_locales": 128,
    "id_token_hint": 16384,
    "claims": 8192,
    "request": 1,
    "request_uri": 1,
}
"""The request's parameters this endpoint reads, and how long each may be."""
PROMPTS = frozenset(["none", "login", "consent", "select_account"])
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


class Refused(Exception):
    """An error the application is told of at its (checked) redirect URI."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def params(ctx: Ctx, source: QueryParams | FormData) -> dict[str, str]:
    """The request's parameters; each at most once (RFC 6749 §3.1), as text, not too long."""
    found: dict[str, str] = {}
    for name, limit in PARAMS.items():
        values = source.getlist(name)
        if not values:
            continue
        value = values[0]
        if len(values) > 1 or not isinstance(value, str) or len(value) > max(limit, 1):
            raise PageError(ctx._("This sign-in request is not valid: %(name)s.") % {"name": name})
        found[name] = value
    return found


async def authorize(ctx: Ctx) -> Response:
    """``GET|POST /oidc/authorize``."""
    if ctx.request.method == "POST":
        assert ctx.form is not None
        p = params(ctx, ctx.form)
        if p.get("response_type") == "id_token":
            from .oidc_eam import eam_start

            return await eam_start(ctx, p)
        # An application's request sent as a form: the same request as a GET, which the
        # browser sends with this portal's cookie (SameSite=Lax; a cross-site POST has none).
        return RedirectResponse(ctx.url(AUTHORIZE) + "?" + urlencode(p), status_code=303)
    return await code_flow(ctx, params(ctx, ctx.request.query_params))


async def checked_client(ctx: Ctx, p: dict[str, str]) -> OidcClientChecked:
    """The client and its redirect URI as the node knows them; the error page otherwise."""
    client_id, redirect_uri = p.get("client_id", ""), p.get("redirect_uri", "")
    if not client_id or not redirect_uri:
        raise PageError(
            ctx._("This sign-in request names no application or no address to go back to.")
        )
    # A refused check is audited at the node: an address that keeps sending unknown clients
    # counts toward its sign-in attempts, and once they are used up it is not asked at all.
    attempts, address = ctx.portal.attempts, ctx.portal.address(ctx.request)
    if attempts.full(address):
        raise PageError(
            ctx._("Too many attempts from your address. Wait a minute, then try again."), 429
        )
    try:
        return await ctx.sdk.oidc_check(client_id, redirect_uri)
    except (InvalidClient, OAuthRefused, InvalidInput):
        attempts.allow(address)
        raise PageError(
            ctx._(
                "This sign-in request is not from an application registered here, or it asks "
                "to go back to an address the application did not register. Nothing was sent "
                "to it. Tell the application's administrator."
            )
        ) from None
    except NotFound:
        raise PageError(ctx._("Signing in to applications is not set up here."), 404) from None


def back_with(redirect_uri: str, **values: str) -> Response:
    """The browser back at the application's (checked) redirect URI with ``values`` added to
    its query."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in values.items() if v})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303)


def origin_of(uri: str) -> str:
    """The redirect URI's origin for the pages' CSP (``""`` for what is not http(s))."""
    parts = urlsplit(uri)
    found = f"{parts.scheme}://{parts.netloc}"
    return found if _ORIGIN.match(found) else ""


def _validate(p: dict[str, str]) -> tuple[frozenset[str], int | None]:
    """The checks of an application's request once its redirect URI is known good."""
    if "request" in p:
        raise Refused("request_not_supported", "request objects are not supported")
    if "request_uri" in p:
        raise Refused("request_uri_not_supported", "request_uri is not supported")
    if p.get("response_type") != "code":
        raise Refused("unsupported_response_type", "response_type must be code")
    if p.get("response_mode", "query") != "query":
        raise Refused("invalid_request", "response_mode must be query")
    if "openid" not in p.get("scope", "").split():
        raise Refused("invalid_scope", "scope must include openid")
    if p.get("code_challenge_method") != "S256" or not _CHALLENGE.match(
        p.get("code_challenge", "")
    ):
        raise Refused("invalid_request", "PKCE is required: code_challenge with method S256")
    prompt = frozenset(p.get("prompt", "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise Refused("invalid_request", "prompt is not valid")
    max_age = None
    if "max_age" in p:
        if not p["max_age"].isascii() or not p["max_age"].isdigit():
            raise Refused("invalid_request", "max_age must be a number of seconds")
        max_age = int(p["max_age"])
    return prompt, max_age


async def code_flow(ctx: Ctx, p: dict[str, str]) -> Response:
    client = await checked_client(ctx, p)
    redirect_uri, state = p["redirect_uri"], p.get("state", "")
    s = ctx.session
    try:
        if client.kind != "app":
            raise Refused("unauthorized_client", "this client may not use the code flow")
        prompt, max_age = _validate(p)
        # Fresh: signed in after this very request sent the person to sign in — not after
        # another one that was abandoned (that would let any later request skip prompt=login).
        fresh = (
            s.signed_in
            and s.oidc_request == AUTHORIZE + "?" + urlencode(p)
            and 0 < s.oidc_sent_at <= s.signed_in_at
        )
        if not s.signed_in or ("login" in prompt and not fresh):
            if "none" in prompt:
                raise Refused("login_required", "the person is not signed in")
            return to_sign_in(ctx, p, client)
        try:
            issued = await ctx.sdk.oidc_code(
                s.token,
                OidcCodeRequest(
                    client_id=client.client_id,
                    redirect_uri=redirect_uri,
                    code_challenge=p["code_challenge"],
                    scope=p["scope"],
                    nonce=p.get("nonce", ""),
                    max_age=None if fresh else max_age,  # signed in for this very request
                ),
                **ctx.where,  # the application's policy rule's networks match its address
            )
        except Unauthorized:  # the node's session has ended: sign in again
            s.token = ""
            if "none" in prompt:
                raise Refused("login_required", "the person is not signed in") from None
            return to_sign_in(ctx, p, client)
        except AccessDenied as e:
            # No second factor to vouch for, or older than max_age: one fresh sign-in, then
            # the application is told.
            if fresh or "none" in prompt:
                code = "login_required" if "none" in prompt else "access_denied"
                raise Refused(code, str(e)) from None
            return to_sign_in(ctx, p, client)
        except InvalidInput as e:
            raise Refused("invalid_request", str(e)) from None
        except InvalidClient:
            raise PageError(ctx._("This application is no longer registered here.")) from None
        except OAuthRefused as e:
            raise Refused(e.code, str(e)) from None
    except Refused as r:
        done(s)
        return back_with(redirect_uri, error=r.code, error_description=r.description, state=state)
    done(s)
    return back_with(redirect_uri, code=issued.code, state=state)


def done(s: Session) -> None:
    """The request is answered: nothing more is on the way to the application."""
    s.oidc_sent_at, s.oidc_request, s.form_to, s.oidc_app = 0.0, "", "", ""


def to_sign_in(ctx: Ctx, p: dict[str, str], client: OidcClientChecked) -> Response:
    """The person signs in (a signed-in one confirms it is them), then comes back here."""
    s = ctx.session
    back = AUTHORIZE + "?" + urlencode(p)
    assert back.startswith(AUTHORIZE + "?")  # the only return address a sign-in takes here
    s.next_page = s.oidc_request = back
    s.oidc_sent_at = time.time()
    s.form_to = origin_of(p["redirect_uri"])
    s.oidc_app = client.name
    s.notice = "oidc"
    return ctx.redirect("/confirm" if s.signed_in else "/sign-in")
