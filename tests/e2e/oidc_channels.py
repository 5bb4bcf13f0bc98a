"""OpenID Connect relying parties as channels of the whole-deployment scenario
(tests/e2e/deployment_scenario.py), through HAProxy's portal backend like every browser:

- **oidc**: an application's server (plain httpx as a confidential client: code + PKCE S256,
  client_secret_basic) sends a new visitor to the authorization endpoint the discovery document
  names; the person signs in at the portal (password, then a TOTP code) and comes back with a
  code; the application redeems it at the token endpoint and checks the ID token with joserfc
  against the JWKS the discovery document points to (issuer, audience, nonce, expiry; ``amr``
  with ``otp`` and ``mfa``; the person's name).
- **eam**: Microsoft Entra ID's external authentication method, from a stand-in tenant
  (tests/node's ``StandInEntra``: its key, its JWKS on loopback): the request POSTed with a
  signed ``id_token_hint``, the second factor only (a TOTP code), and the answer the portal
  POSTs back checked as Microsoft documents (tests/e2e/test_oidc_browser.py's ``entra_checks``).

Guard (counted on the scenario's "guard" channel): now and then a wrong code is given first,
which must never bring a code to the application or an ``id_token`` to Entra, and a code is
redeemed a second time, which must be ``invalid_grant``. A wrong code is always followed by the
right one, which clears it (the user is never locked).

Where no portal host serves the provider (a release without OpenID Connect, or the provider not
set up: no ``[oidc] issuer``), the discovery document must be a clear 404, never a 5xx and
never an authorization: tallied in ``refused``, not counted as a sign-in. Each sign-in is
tallied by the releases the portal hosts ran while it was made (probed before and after)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import unescape
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from openmfa.core.totp import step_at, totp
from tests.node.test_oidc_eam import APP_ID, CLAIMS, TENANT

from .test_oidc_browser import EntraStandIn, entra_checks

OIDC_USERS = 8
EAM_USERS = 6
"""The channels' people: a code once per 30-second step each (the node refuses one again), so
each channel signs in at most this many people a step — about one every 4 or 5 seconds."""
REDIRECT_URI = "https://rp.example.org/oidc/callback"
"""The application's registered redirect URI (never visited: its server reads the Location)."""
GUARD_EVERY = 3
"""Every third sign-in of a channel gives a wrong code first (and redeems its code twice)."""
Count = Callable[[str, bool, float, str], None]


class Released(Protocol):
    def release(self) -> str: ...


def _release(host: Released) -> str:
    try:
        return host.release()
    except Exception:  # restarting or drained: not answering just now
        return "?"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    if not found:
        raise AssertionError(f"no form on the page: {text[:300]}")
    return found.group(1)


def _hidden(text: str) -> tuple[str, dict[str, str]]:
    """A form_post page's form: (its action, its hidden fields)."""
    action = re.search(r'<form method="post" action="([^"]*)"', text)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', text)
    return unescape(action.group(1)) if action else "", {k: unescape(v) for k, v in fields}


@dataclass
class OidcChannels:
    portal_url: str
    """The portal through HAProxy: the provider's issuer, when it serves one."""
    password: str
    seeds: dict[str, bytes]
    """The oidc channel's people (the password and a TOTP method)."""
    eam_seeds: dict[str, bytes]
    """The eam channel's people (a TOTP method; each mapped to an Entra account, ``oids``)."""
    portals: Sequence[Released]
    client_id: str = ""
    secret: str = ""
    entra: EntraStandIn | None = None
    oids: dict[str, str] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    """Clear refusals (no provider served) by channel and what the portal hosts ran."""
    signed_in: Counter[str] = field(default_factory=Counter)
    """Accepted sign-ins by channel and what the portal hosts ran while each was made."""
    times: list[tuple[float, str]] = field(default_factory=list)
    """When (``time.monotonic()``) each accepted sign-in ended, and its tally's key."""
    used: dict[str, int] = field(default_factory=dict)
    rounds: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def where(self) -> str:
        releases = {_release(h) for h in self.portals} - {"?"}
        return "portal " + ("+".join(sorted(releases)) or "?")

    def credentials(self, seeds: dict[str, bytes]) -> tuple[str, str] | None:
        """A person whose code of this 30-second step is not used yet, and that code."""
        step = step_at(time.time())
        with self.lock:
            for name, key in seeds.items():
                if self.used.get(name, -1) < step:
                    self.used[name] = step
                    return name, totp(key, step * 30)
        return None

    def meta(self) -> tuple[dict[str, Any] | None, str]:
        """The discovery document, or None with why (a clear 404 is expected then)."""
        r = httpx.get(self.portal_url + "/.well-known/openid-configuration", timeout=30)
        if r.status_code == 200:
            return r.json(), ""
        return None, f"{r.status_code} {r.text[:200]}"

    def once(self, channel: str, count: Count) -> tuple[bool, str] | None:
        """One round of ``channel`` ("oidc" or "eam"): a sign-in where a provider is served,
        otherwise the refusal checked (None: nothing counted on the channel)."""
        meta, why = self.meta()
        if meta is None:
            if not why.startswith("404 "):
                return False, f"{channel}: no provider, and not a clear refusal: {why}"
            self.refused[f"{channel} on {self.where()}"] += 1
            time.sleep(1.0)
            return None
        seeds = self.seeds if channel == "oidc" else self.eam_seeds
        cred = self.credentials(seeds)
        if cred is None or not (self.client_id if channel == "oidc" else self.entra):
            return None
        with self.lock:
            self.rounds[channel] += 1
            guard = self.rounds[channel] % GUARD_EVERY == 0
        before = self.where()
        sign_in = self.code_flow if channel == "oidc" else self.eam
        good, why = sign_in(meta, cred[0], cred[1], guard, count)
        after = self.where()
        if good:
            key = f"{channel} on {before if before == after else 'a change'}"
            with self.lock:
                self.signed_in[key] += 1
                self.times.append((time.monotonic(), key))
        return good, why

    def _follow(self, h: httpx.Client, r: httpx.Response, stop: str) -> httpx.Response:
        """Redirects followed, within the portal, until one leads to ``stop``."""
        for _ in range(6):
            if r.status_code not in (302, 303) or r.headers["location"].startswith(stop):
                return r
            r = h.get(urljoin(str(r.url), r.headers["location"]))
        return r

    def code_flow(
        self, meta: dict[str, Any], user: str, code: str, guard: bool, count: Count
    ) -> tuple[bool, str]:
        verifier, nonce, state = (secrets.token_urlsafe(n) for n in (48, 16, 16))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email", "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        }  # fmt: skip
        with httpx.Client(timeout=30) as h:
            r = self._follow(h, h.get(meta["authorization_endpoint"], params=query), REDIRECT_URI)
            if r.status_code != 200 or not str(r.url).split("?")[0].endswith("/sign-in"):
                return False, f"oidc {user}: authorize led to {r.status_code} {r.url}"
            form = {"csrf": _csrf(r.text), "user": user, "password": self.password}
            r = h.post(str(r.url), data=form)
            if r.status_code != 303 or not r.headers["location"].endswith("/second-factor"):
                return False, f"oidc {user} password step: {r.status_code} {r.text[:200]}"
            page = h.get(urljoin(str(r.url), r.headers["location"]))
            if guard:
                wrong = "000000" if code != "000000" else "111111"
                r = h.post(str(page.url), data={"csrf": _csrf(page.text), "code": wrong})
                held = 200 <= r.status_code < 300 or 400 <= r.status_code < 500  # no redirect
                why = f"guard oidc: a wrong code got {r.status_code} {r.headers.get('location')}"
                count("guard", held and REDIRECT_URI not in r.text, 0.0, why)
                page = r if r.status_code == 200 else h.get(str(page.url))
            r = h.post(str(page.url), data={"csrf": _csrf(page.text), "code": code})
            r = self._follow(h, r, REDIRECT_URI)
            to = r.headers.get("location", "")
            got = {k: v[0] for k, v in parse_qs(urlsplit(to).query).items()}
            if not to.startswith(REDIRECT_URI) or got.get("state") != state or "code" not in got:
                return False, f"oidc {user} code step: {r.status_code} {to[:200]} {r.text[:200]}"
            # The application's server: the code redeemed, the ID token checked.
            form = {"grant_type": "authorization_code", "code": got["code"],
                    "redirect_uri": REDIRECT_URI, "code_verifier": verifier}  # fmt: skip
            auth = (self.client_id, self.secret)
            r = h.post(meta["token_endpoint"], data=form, auth=auth)
            if r.status_code != 200:
                return False, f"oidc {user} token: {r.status_code} {r.text[:200]}"
            token = r.json()
            if guard:  # the same code again: refused, whoever asks
                again = h.post(meta["token_endpoint"], data=form, auth=auth)
                refused = again.status_code == 400 and again.json()["error"] == "invalid_grant"
                why = f"guard oidc: a code redeemed twice got {again.status_code} {again.text}"
                count("guard", refused, 0.0, why)
            keys = KeySet.import_key_set(h.get(meta["jwks_uri"]).json())
        claims = jwt.decode(token["id_token"], keys, algorithms=["RS256", "ES256"]).claims
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        ).validate(claims)
        good = {"otp", "mfa"} <= set(claims["amr"]) and claims["preferred_username"] == user
        return (
            good,
            f"oidc {user}: the ID token says {claims['preferred_username']} {claims['amr']}",
        )

    def eam(
        self, meta: dict[str, Any], user: str, code: str, guard: bool, count: Count
    ) -> tuple[bool, str]:
        entra = self.entra
        assert entra is not None
        entra.sent = sent = {
            "client_id": entra.client_id, "redirect_uri": entra.redirect_uri,
            "response_type": "id_token", "response_mode": "form_post", "scope": "openid",
            "id_token_hint": entra.keys.hint(time.time(), oid=self.oids[user], sub=f"s-{user}"),
            "claims": CLAIMS, "nonce": secrets.token_urlsafe(16),
            "state": secrets.token_urlsafe(16),
        }  # fmt: skip
        with httpx.Client(timeout=30) as h:  # a new visitor: Entra's POST carries no cookie
            origin = urlsplit(entra.redirect_uri)._replace(path="").geturl()
            cross = {"origin": origin, "sec-fetch-site": "cross-site"}
            r = h.post(meta["authorization_endpoint"], data=sent, headers=cross)
            if r.status_code != 303 or not r.headers["location"].endswith("/second-factor"):
                return False, f"eam {user}: the request got {r.status_code} {r.text[:300]}"
            page = h.get(urljoin(str(r.url), r.headers["location"]))
            if "password" in page.text.lower() and 'name="password"' in page.text:
                return False, f"eam {user}: asked for a password (Entra did the first factor)"
            if guard:
                wrong = "000000" if code != "000000" else "111111"
                r = h.post(str(page.url), data={"csrf": _csrf(page.text), "code": wrong})
                held = 200 <= r.status_code < 300 or 400 <= r.status_code < 500  # no redirect
                why = f"guard eam: a wrong code got {r.status_code} {r.headers.get('location')}"
                count("guard", held and 'name="id_token"' not in r.text, 0.0, why)
                page = r if r.status_code == 200 else h.get(str(page.url))
            r = h.post(str(page.url), data={"csrf": _csrf(page.text), "code": code})
            r = self._follow(h, r, entra.redirect_uri)
            if r.status_code != 200:
                return False, f"eam {user} code step: {r.status_code} {r.text[:300]}"
        action, answer = _hidden(r.text)
        if action != entra.redirect_uri or "id_token" not in answer:
            return False, f"eam {user}: the answer {action} {json.dumps(answer)[:300]}"
        claims = entra_checks(entra, answer)  # raises when any of Microsoft's checks fails
        return claims["amr"] == ["otp"], f"eam {user}: amr {claims['amr']}"

    def close(self) -> None:
        if self.entra is not None:
            self.entra.close()

    def summary(self) -> str:
        tally = "; ".join(f"{k}: {v}" for k, v in sorted(self.signed_in.items()))
        refused = "; ".join(f"{k}: {v}" for k, v in sorted(self.refused.items()))
        return f"oidc/eam signed in: {tally or 'none'}; refused (no provider): {refused or 'none'}"


def entra_tenant(portal_url: str) -> EntraStandIn:
    """The stand-in tenant (its key and JWKS on loopback, for ``--jwks-uri``), whose answers
    are checked against ``portal_url``'s discovery document."""
    return EntraStandIn(portal_url)


def _printed(out: str) -> dict[str, str]:
    return {
        k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
    }


def people(api: httpx.Client) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The channels' people, made through the SDK's admin API (``api``), each with a TOTP
    method: (the oidc channel's, whom the scenario gives the password; the eam channel's)."""
    made: tuple[dict[str, bytes], dict[str, bytes]] = ({}, {})
    for prefix, many, seeds in (("oidc", OIDC_USERS, made[0]), ("eam", EAM_USERS, made[1])):
        for i in range(many):
            name, secret = f"{prefix}{i:02d}", secrets.token_bytes(20)
            r = api.post("/v1/users", json={"name": name, "email": f"{name}@example.org"})
            assert r.status_code == 201, r.text
            method = {"kind": "totp", "secret": base64.b32encode(secret).decode()}
            r = api.post(f"/v1/users/{name}/methods", json=method)
            assert r.status_code == 201, r.text
            seeds[name] = secret
    return made


def register(cli: Callable[..., str], channels: OidcChannels) -> None:
    """The application and the stand-in Entra tenant registered as clients at a node
    (``cli``: ``openmfa ARGS`` there, its output), each eam person mapped to an Entra account."""
    out = _printed(cli("oidc", "client", "add", "wiki", "--redirect-uri", REDIRECT_URI))
    channels.client_id, channels.secret = out["client_id"], out["client_secret"]
    entra = channels.entra = entra_tenant(channels.portal_url)
    out = _printed(
        cli(
            "oidc", "client", "add", "entra", "--kind", "entra-eam",
            "--redirect-uri", entra.redirect_uri, "--entra-tenant", TENANT,
            "--entra-client-id", APP_ID, "--jwks-uri", entra.keys.jwks_uri,
        )
    )  # fmt: skip
    entra.client_id = out["client_id"]
    for user in channels.eam_seeds:
        channels.oids[user] = oid = str(uuid.uuid4())
        cli("oidc", "subject", "map", user, "--oid", oid, "--tid", TENANT)
