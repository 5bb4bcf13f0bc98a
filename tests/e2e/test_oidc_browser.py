"""The User Portal as an OpenID Connect provider, in Debian's Chromium (Playwright), against
real node and portal processes.

- An application written with Authlib's OAuth 2.0 client (as an application would use it:
  the discovery document, code + PKCE S256, client_secret_basic at the token endpoint) sends
  the browser to the portal; the person signs in with a password and an authenticator app's
  code (oathtool); the application checks the ID token with joserfc against the portal's JWKS
  (issuer, audience, nonce, expiry) and sees ``amr`` = pwd, otp, mfa. A wrong code never
  reaches the application.
- Microsoft Entra ID's external authentication method, against a stand-in tenant on
  ``localhost`` (another site than the portal's ``127.0.0.1``, so its POST is cross-site as
  Entra's is): its page POSTs the authorization request with a hint signed by its key (the
  node tests' ``StandInEntra``, its JWKS on loopback), the person gives only the second
  factor, and the answer POSTed back is checked as Microsoft documents (``entra_checks``). On
  a phone's screen too, with the auto-submit script blocked: the Continue button does it.

Every new page is judged by axe-core and screenshot under test-output/oidc/.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.node.test_oidc_eam import APP_ID, CLAIMS, OID, TENANT, StandInEntra

from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, Visitor, launch, playwright_api
from .helpers import OPENMFA, cli, free_port, init, oathtool, server, start_service, stop

authlib_client = pytest.importorskip("authlib.integrations.requests_client")
pytestmark = pytest.mark.e2e
OUTPUT = OUTPUT_ROOT / "oidc"
SEEDS = {
    "ada": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ",
    "ben": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "cleo": "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
}
CLEO = str(uuid.uuid4())
"""Cleo's object id in the stand-in tenant (Ben's is the node tests' ``OID``)."""
ENTRA_AMR = {"face", "fido", "fpt", "hwk", "iris", "otp", "pop", "retina", "sc", "sms", "swk",
             "tel", "vbm"}  # fmt: skip
"""The ``amr`` values Microsoft lists for an external authentication method's answer."""


class Http:
    """A loopback HTTP server whose handler is ``handle(method, path, form) -> (status,
    headers, body)``."""

    def __init__(self, host: str, handle: Any) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = {k: v[0] for k, v in parse_qs(body).items()}
                status, headers, text = handle(method, self.path, form)
                data = text.encode()
                self.send_response(status)
                for k, v in {"content-type": "text/html; charset=utf-8", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,"><title>{title}</title>'
        f"</head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )


class AuthlibApp:
    """An application signing people in with Authlib's OAuth 2.0 client (code + PKCE S256,
    client_secret_basic), checking the ID token with joserfc against the provider's JWKS."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.callbacks: list[dict[str, str]] = []
        self.claims: list[dict[str, Any]] = []
        self.pending: dict[str, tuple[str, str]] = {}
        self.client_id = self.secret = ""
        self.http = Http("127.0.0.1", self.handle)
        self.redirect_uri = self.http.url + "/cb"

    def client(self) -> Any:
        return authlib_client.OAuth2Session(
            self.client_id,
            self.secret,
            scope="openid profile email",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )

    def handle(
        self, method: str, path: str, form: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        meta = httpx.get(self.issuer + "/.well-known/openid-configuration").json()
        if path == "/login":
            verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
            with self.client() as c:
                uri, state = c.create_authorization_url(
                    meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
                )
            self.pending[state] = (verifier, nonce)
            return 302, {"location": uri}, ""
        got = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        self.callbacks.append(got)
        if "error" in got or got.get("state") not in self.pending:
            return 400, {}, page("Not signed in", f"<p>{escape(got.get('error', 'state'))}</p>")
        verifier, nonce = self.pending.pop(got["state"])
        with self.client() as c:
            token = c.fetch_token(
                meta["token_endpoint"],
                authorization_response=self.http.url + path,
                code_verifier=verifier,
                state=got["state"],
            )
        keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"]).json())
        decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        ).validate(decoded.claims)
        self.claims.append(decoded.claims)
        amr = " ".join(decoded.claims["amr"])
        name = escape(decoded.claims["preferred_username"])
        return 200, {}, page(f"Hello {name}", f'<p id="amr">{escape(amr)}</p>')


@dataclass
class EntraStandIn:
    """A stand-in Entra tenant: its key and JWKS (``StandInEntra``), a page that POSTs the
    external authentication request to the portal, and the redirect URI answers come to."""

    provider: str
    client_id: str = ""
    keys: StandInEntra = field(default_factory=StandInEntra)
    answers: list[dict[str, str]] = field(default_factory=list)
    sent: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = Http("localhost", self.handle)
        self.redirect_uri = self.http.url + "/common/federation/externalauthprovider"

    def handle(
        self, method: str, path: str, form: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        if path.startswith("/start"):
            oid = parse_qs(urlsplit(path).query).get("oid", [OID])[0]
            self.sent = {
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "response_type": "id_token",
                "response_mode": "form_post",
                "scope": "openid",
                "id_token_hint": self.keys.hint(time.time(), oid=oid),
                "claims": CLAIMS,
                "nonce": secrets.token_urlsafe(16),
                "state": secrets.token_urlsafe(16),
            }
            inputs = "".join(
                f'<input type="hidden" name="{k}" value="{escape(v)}">'
                for k, v in self.sent.items()
            )
            action = self.provider + "/oidc/authorize"
            form_html = (
                f'<form method="post" action="{action}">{inputs}<button>Go on</button></form>'
            )
            return 200, {}, page("Stand-in Entra", form_html)
        if method != "POST" or path != urlsplit(self.redirect_uri).path:
            return 404, {}, page("Not found", "")  # a favicon
        self.answers.append(form)
        return 200, {}, page("Stand-in Entra got an answer", "<p>Thank you.</p>")

    def close(self) -> None:
        self.http.close()
        self.keys.close()


def entra_checks(entra: EntraStandIn, answer: dict[str, str]) -> dict[str, Any]:
    """The answer as Microsoft documents an external authentication method's: POSTed back
    (form_post) with ``id_token`` and the request's ``state``; the token signed with RS256 by
    a key the provider's discovery document points to (its JWKS, with ``x5c``); ``iss`` the
    discovery document's issuer; ``aud`` the client id Entra sent; ``sub`` the hint's ``sub``;
    ``nonce`` the request's; not expired; ``acr`` one value Entra asked for; ``amr`` an array
    of exactly one value from Entra's list (never ``pwd`` or ``mfa``)."""
    assert set(answer) == {"id_token", "state"}, answer
    assert answer["state"] == entra.sent["state"]
    meta = httpx.get(entra.provider + "/.well-known/openid-configuration").json()
    jwks = httpx.get(meta["jwks_uri"]).json()
    decoded = jwt.decode(answer["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    key = next(k for k in jwks["keys"] if k["kid"] == decoded.header["kid"])
    assert key["kty"] == "RSA" and key["x5c"], key
    hint = jwt.decode(entra.sent["id_token_hint"], entra.keys.key).claims
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": entra.client_id},
        sub={"essential": True, "value": hint["sub"]},
        nonce={"essential": True, "value": entra.sent["nonce"]},
        exp={"essential": True},
    ).validate(claims)
    asked = json.loads(entra.sent["claims"])["id_token"]
    assert claims["acr"] in asked["acr"]["values"]
    assert isinstance(claims["amr"], list) and len(claims["amr"]) == 1, claims["amr"]
    assert claims["amr"][0] in ENTRA_AMR and claims["amr"][0] in asked["amr"]["values"]
    return claims


@dataclass
class Site:
    dd: Path
    portal: str
    backup_code: str
    """One of Ben's backup codes."""
    app: AuthlibApp
    entra: EntraStandIn


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    dd = tmp_path / "node"
    init(dd)
    portal_port = free_port()
    portal = f"http://127.0.0.1:{portal_port}/portal"
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[oidc]\nissuer = "{portal}"\n')
    for user, seed in SEEDS.items():
        cli(dd, "user", "add", user)
        subprocess.run(
            [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(dd)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        cli(dd, "method", "add", user, "totp", "--secret", seed, "--no-qr")
    app = AuthlibApp(portal)
    entra = EntraStandIn(portal)
    try:
        out = cli(dd, "oidc", "client", "add", "wiki", "--redirect-uri", app.redirect_uri).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        app.client_id, app.secret = fields["client_id"].strip(), fields["client_secret"].strip()
        out = cli(
            dd, "oidc", "client", "add", "entra", "--kind", "entra-eam",
            "--redirect-uri", entra.redirect_uri, "--entra-tenant", TENANT,
            "--entra-client-id", APP_ID, "--jwks-uri", entra.keys.jwks_uri,
        ).stdout  # fmt: skip
        entra.client_id = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)[
            "client_id"
        ].strip()
        out = cli(dd, "method", "add", "ben", "backup-codes").stdout
        backup = out.split("shown only now):")[1].split()[0]
        for user, oid in (("ben", OID), ("cleo", CLEO)):
            cli(dd, "oidc", "subject", "map", user, "--oid", oid, "--tid", TENANT)
        key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
        with server(dd) as node:
            folder = tmp_path / "portal"
            folder.mkdir()
            (folder / "portal.key").write_text(key + "\n")
            (folder / "portal.key").chmod(0o600)
            (folder / "portal.toml").write_text(
                f'[portal]\nlisten = "127.0.0.1:{portal_port}"\nnodes = ["{node.url}"]\n'
                'api_key_file = "portal.key"\nattempts_per_minute = 1000\n'
            )
            argv = ["portal", "serve", "--config", str(folder / "portal.toml")]
            proc = start_service(argv, portal + "/healthz", folder / "portal.log")
            try:
                yield Site(dd, portal, backup, app, entra)
            finally:
                stop(proc)
    finally:
        app.http.close()
        entra.close()


def _visitor(browser: Any, name: str, **options: Any) -> Visitor:
    folder = OUTPUT / name
    folder.mkdir(parents=True, exist_ok=True)
    return Visitor(browser, folder, **options)


def test_an_authlib_application_signs_a_person_in_through_the_portal(site: Site) -> None:
    with launch() as browser:
        v = _visitor(browser, "code-flow")
        v.expected.append("Failed to load resource")  # the app's 400 for a refused sign-in
        v.page.goto(site.app.http.url + "/login")
        v.at("/portal/sign-in")
        v.notice_says("Sign in to go on to wiki.")
        v.see("sign-in-for-wiki")
        v.label("User name").fill("ada")
        v.label("Password").fill(PASSWORD)
        v.button("Sign in").click()
        v.at("/portal/second-factor")
        v.see("second-factor")
        right = oathtool("--totp", "-b", SEEDS["ada"])
        v.code("99999999" if right != "99999999" else "11111111")
        v.alert_says("That code is not right")
        assert site.app.callbacks == []  # a wrong code never reaches the application
        v.code(right)
        playwright_api.expect(v.page.get_by_role("heading", level=1)).to_have_text("Hello ada")
        assert v.page.locator("#amr").inner_text() == "pwd otp mfa"
        assert len(site.app.claims) == 1 and site.app.claims[0]["amr"] == ["pwd", "otp", "mfa"]
        # Signed in at the portal: the application's next sign-in needs nothing more.
        v.page.goto(site.app.http.url + "/login")
        playwright_api.expect(v.page.get_by_role("heading", level=1)).to_have_text("Hello ada")
        assert len(site.app.claims) == 2
        # An unregistered redirect URI: the portal's error page, nothing sent anywhere.
        v.expected.append("status of 400")
        v.page.goto(
            site.portal + "/oidc/authorize?client_id=" + site.app.client_id
            + "&redirect_uri=http://127.0.0.1:9/cb&response_type=code&scope=openid"
        )  # fmt: skip
        v.alert_says("Nothing was sent to it")
        v.see("unregistered-redirect")
        assert v.errors == []
        v.close()


def test_entra_id_s_external_authentication_method_in_the_browser(site: Site) -> None:
    entra = site.entra
    with launch() as browser:
        v = _visitor(browser, "entra")
        # Signed in to the portal already: that session does not stand in for the second factor.
        v.sign_in(site.portal, "ben")
        v.code(site.backup_code)
        v.at("/portal/methods")
        v.page.goto(entra.http.url + "/start")
        v.button("Go on").click()
        v.at("/portal/second-factor")
        v.see("entra-second-factor")
        playwright_api.expect(v.label("Verification code")).to_be_visible()
        assert v.page.get_by_label("Password", exact=True).count() == 0  # Entra did the first
        v.code(oathtool("--totp", "-b", SEEDS["ben"]))
        playwright_api.expect(v.page.get_by_role("heading", level=1)).to_have_text(
            "Stand-in Entra got an answer"
        )
        assert len(entra.answers) == 1
        claims = entra_checks(entra, entra.answers[0])
        assert claims["amr"] == ["otp"]
        assert v.errors == []
        v.close()

        # A phone, its browser without the auto-submit script: the Continue button does it.
        p = _visitor(browser, "entra-phone", phone=(390, 844))
        p.expected.append("Failed to load resource")
        p.page.route("**/static/form_post.js", lambda route: route.abort())
        p.page.goto(entra.http.url + "/start?oid=" + CLEO)
        p.button("Go on").click()
        p.at("/portal/second-factor")
        p.fits("entra-second-factor-phone")
        p.code(oathtool("--totp", "-b", SEEDS["cleo"]))
        p.at("/portal/oidc/eam/finish")
        p.fits("entra-continue-phone")
        p.button("Continue").click()
        playwright_api.expect(p.page.get_by_role("heading", level=1)).to_have_text(
            "Stand-in Entra got an answer"
        )
        assert len(entra.answers) == 2
        entra_checks(entra, entra.answers[1])
        assert p.errors == []
        p.close()
