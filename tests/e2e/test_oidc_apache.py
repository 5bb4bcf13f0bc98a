"""A relying party no one here wrote signs people in through the portal's OpenID Connect
provider (issue 34): Debian's Apache with mod_auth_openidc (apache_oidc.py) protects a page,
registered with ``openmfa oidc client add``; a node, its portal (the provider, app_site.py) and
Apache are real processes, the browser is Debian's Chromium driven by Playwright. An anonymous
visit goes to the portal's sign-in (password, then a code from the person's authenticator app)
and back to the page, which shows who the module says signed in and how (``amr``); a wrong code
never reaches the page."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .apache_oidc import ApacheSite, apache_oidc, redirect_uri, site_url
from .app_site import SEED, Site, serving_site
from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, Visitor, launch, playwright_api
from .helpers import cli, free_port, oathtool

OUTPUT = OUTPUT_ROOT / "oidc-apache"
pytestmark = pytest.mark.e2e
expect = playwright_api.expect


@dataclass
class Protected:
    site: Site
    """The node and its portal, the provider."""
    apache: ApacheSite
    client_id: str


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    with serving_site(tmp_path_factory.mktemp("oidc-apache"), oidc=True) as site:
        port = free_port()
        added = cli(
            site.dd, "oidc", "client", "add", "apache", "--redirect-uri",
            redirect_uri(site_url(port)),
        ).stdout  # fmt: skip
        client_id = re.search(r"^client_id:\s+(\S+)$", added, re.M)
        secret = re.search(r"^client_secret:\s+(\S+)$", added, re.M)
        assert client_id and secret, added
        metadata = site.portal + "/.well-known/openid-configuration"
        with apache_oidc(
            metadata_url=metadata,
            client_id=client_id.group(1),
            client_secret=secret.group(1),
            port=port,
        ) as apache:
            yield Protected(site, apache, client_id.group(1))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


@pytest.fixture
def visitor(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    v = Visitor(chromium, folder)
    try:
        yield v
    finally:
        v.close()
    assert v.errors == [], f"console errors: {v.errors}"


def served_pages(apache: ApacheSite) -> int:
    """How many times Apache has served the protected page (its access log: 200s)."""
    log = (apache.folder / "access.log").read_text()
    return len(re.findall(r'"GET /private/index\.shtml[^"]*" 200', log))


def codes_given(apache: ApacheSite) -> int:
    """How many times a browser brought Apache's redirect URI an authorization code."""
    log = (apache.folder / "access.log").read_text()
    return len(re.findall(r'"GET /private/redirect_uri\?[^"]*code=', log))


def test_an_anonymous_visit_is_sent_to_the_portals_authorization_endpoint(
    protected: Protected,
) -> None:
    apache, portal = protected.apache, protected.site.portal
    # Apache listens on 127.0.0.1; the browser's name for it is localhost.
    host = {"Host": apache.url.split("//", 1)[1]}
    went = httpx.get(apache.page.replace("localhost", "127.0.0.1"), headers=host)
    assert went.status_code == 302, (went.status_code, apache.log()[-2000:])
    to = urlsplit(went.headers["location"])
    assert f"{to.scheme}://{to.netloc}{to.path}" == portal + "/oidc/authorize"
    query = {k: v[0] for k, v in parse_qs(to.query).items()}
    assert query["client_id"] == protected.client_id
    assert query["redirect_uri"] == apache.redirect_uri
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert set(query["scope"].split()) == {"openid", "profile", "email"}
    assert query["state"] and query["nonce"]
    # The portal takes the request: a sign-in to do, not an error.
    asked = httpx.get(went.headers["location"])
    assert asked.status_code in (200, 302, 303), asked.text[:500]


def test_sign_in_at_openmfa_and_back_at_the_site_which_sees_the_user_and_the_amr(
    protected: Protected, visitor: Visitor
) -> None:
    protected.site.person("ada", password=True, totp=True)
    before = served_pages(protected.apache)
    visitor.page.goto(protected.apache.page)
    expect(visitor.page).to_have_url(re.compile("^" + re.escape(protected.site.portal)))
    visitor.see("portal-sign-in")
    visitor.label("User name").fill("ada")
    visitor.label("Password").fill(PASSWORD)
    visitor.button("Sign in").click()
    visitor.see("portal-code")
    visitor.code(oathtool("--totp", "-b", SEED))
    expect(visitor.page).to_have_url(protected.apache.page, timeout=30_000)
    visitor.see("site-signed-in")
    shown = protected.apache.claims(visitor.page.content())
    assert shown["user"] == shown["preferred_username"] == "ada", shown
    assert {"pwd", "otp", "mfa"} <= set(shown["amr"].split(",")), shown
    assert shown["iss"] == protected.site.portal, shown
    assert shown["sub"] and shown["sub"] != "ada", shown
    assert served_pages(protected.apache) == before + 1
    # What the module read from the amr is what Apache's own authorization goes by: a page
    # for passkey sign-ins only is refused to a code.
    visitor.expected.append("401")
    refused = visitor.page.goto(protected.apache.passkey_page)
    assert refused is not None and refused.status == 401, refused and refused.status
    assert "Example application" not in visitor.page.content()


def test_a_wrong_code_never_reaches_the_site(protected: Protected, visitor: Visitor) -> None:
    protected.site.person("bob", password=True, totp=True)
    before = codes_given(protected.apache), served_pages(protected.apache)
    visitor.page.goto(protected.apache.page)
    expect(visitor.page).to_have_url(re.compile("^" + re.escape(protected.site.portal)))
    visitor.label("User name").fill("bob")
    visitor.label("Password").fill(PASSWORD)
    visitor.button("Sign in").click()
    right = oathtool("--totp", "-b", SEED)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    visitor.expected.append("401")  # the refused form's status, on the console
    visitor.code(wrong)
    visitor.alert_says("not right")
    visitor.see("portal-wrong-code")
    assert visitor.page.url.startswith(protected.site.portal), visitor.page.url
    # The site again: still sent to the portal, the person not signed in there.
    visitor.page.goto(protected.apache.page)
    expect(visitor.page).to_have_url(re.compile("^" + re.escape(protected.site.portal)))
    expect(visitor.label("Verification code").or_(visitor.label("User name"))).to_be_visible()
    # Apache was never handed a code, and never served the page.
    assert (codes_given(protected.apache), served_pages(protected.apache)) == before
