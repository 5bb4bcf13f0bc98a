"""OpenID Connect provider benchmark (issue 34): a real `openmfa portal serve` (the provider)
in front of a real `openmfa serve` (which signs), separate processes on loopback, driven over
HTTP as a relying party and its users' browsers would.

Prints:
- authorization code flow for people who already have a portal session: the authorization
  request (with PKCE S256) → the redirect with a code → the token request (client_secret_basic)
  → an ID token, p50/p99 of each step and of the round, rounds per second (``--rounds``
  rounds over ``--concurrency`` sessions; the first ID token is verified against the JWKS),
  and the CPU time the portal and the node spent per round;
- the discovery document and the JWKS: per second and p50/p99 (wrk, c=16), and how long a
  relying party may cache them (their Cache-Control);
- the portal's memory (VmRSS): idle, after the sign-ins, after the rounds.

    python bench/oidc.py                    # ./dev bench-oidc
    python bench/oidc.py --rounds 4000 --concurrency 16 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.helpers import OPENMFA, free_port, start_service, stop

import wrk_load
from openmfa.store.database import DataDir
from portal import percentiles, populate, sign_in, vm_rss_kib
from verify import cpu_seconds, start_node

REDIRECT_URI = "https://app.example.org/oidc/callback"
"""The relying party's redirect URI: never visited (the code is read from the redirect)."""


def register(dd: DataDir) -> tuple[str, str]:
    """``openmfa oidc client add``, as an administrator does: (client_id, client_secret)."""
    out = subprocess.run(
        [OPENMFA, "oidc", "client", "add", "bench", "--redirect-uri", REDIRECT_URI],
        capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "OPENMFA_DATA_DIR": str(dd.root)},
    ).stdout  # fmt: skip
    client_id = re.search(r"^client_id:\s+(\S+)$", out, re.M)
    secret = re.search(r"^client_secret:\s+(\S+)$", out, re.M)
    assert client_id and secret, out
    return client_id[1], secret[1]


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class RelyingParty:
    """What an application does for one person: ask for a code, trade it for an ID token."""

    def __init__(self, portal: str, client_id: str, secret: str) -> None:
        self.portal = portal
        self.client_id = client_id
        self.auth = httpx.BasicAuth(client_id, secret)
        self.authorize_s: list[float] = []
        self.token_s: list[float] = []
        self.round_s: list[float] = []
        self.first = ""
        """The first ID token, and the nonce it must echo."""
        self.nonce = ""

    async def round(self, browser: httpx.AsyncClient, app: httpx.AsyncClient) -> None:
        verifier = secrets.token_urlsafe(48)
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email",
            "state": state,
            "nonce": nonce,
            "code_challenge": b64u(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        t0 = time.perf_counter()
        went = await browser.get("/oidc/authorize", params=query)
        t1 = time.perf_counter()
        to = went.headers.get("location", "")
        assert went.status_code in (302, 303) and to.startswith(REDIRECT_URI + "?"), (
            went.status_code,
            to,
            went.text[:300],
        )
        back = {k: v[0] for k, v in parse_qs(urlsplit(to).query).items()}
        assert back.get("state") == state and back.get("code"), back
        form = {
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        t2 = time.perf_counter()
        answer = await app.post("/oidc/token", data=form, auth=self.auth)
        t3 = time.perf_counter()
        assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        id_token = answer.json()["id_token"]
        if not self.first:
            self.first = id_token
            self.nonce = nonce
        self.authorize_s.append(t1 - t0)
        self.token_s.append(t3 - t2)
        self.round_s.append(t3 - t0)


def verify_id_token(portal: str, id_token: str, client_id: str, nonce: str) -> dict[str, object]:
    """The ID token checked as a relying party would: signature by a key of the JWKS the
    discovery document names, issuer, audience, nonce, not expired; its claims."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    meta = httpx.get(portal + "/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"]).json())
    token = jwt.decode(id_token, keys, algorithms=meta["id_token_signing_alg_values_supported"])
    claims = dict(token.claims)
    assert claims["iss"] == meta["issuer"] == portal, (claims, meta["issuer"])
    assert claims["aud"] in (client_id, [client_id]), claims
    assert claims["nonce"] == nonce and float(claims["exp"]) > time.time(), claims
    return claims


async def flows(
    portal: str, keys: list[bytes], client: tuple[str, str], rounds: int, pids: list[int]
) -> tuple[RelyingParty, float, list[float]]:
    """Sign everyone in (password + code), then ``rounds`` authorization code flows spread
    over their sessions; (the timings, rounds per second, the CPU seconds each of ``pids``
    spent on the rounds)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    browsers = [httpx.AsyncClient(base_url=portal, limits=limits) for _ in keys]
    apps = [httpx.AsyncClient(base_url=portal, limits=limits) for _ in keys]
    step = int(time.time() // 30)
    try:
        await asyncio.gather(
            *(sign_in(c, f"user{i:04d}", keys[i], step) for i, c in enumerate(browsers))
        )
        rp = RelyingParty(portal, *client)
        await rp.round(browsers[0], apps[0])  # warm-up, and the ID token to verify
        left = [rounds]

        async def person(i: int) -> None:
            while left[0] > 0:
                left[0] -= 1
                await rp.round(browsers[i], apps[i])

        for samples in (rp.authorize_s, rp.token_s, rp.round_s):
            samples.clear()  # the warm-up's
        cpu = [cpu_seconds(pid) for pid in pids]
        t0 = time.perf_counter()
        await asyncio.gather(*(person(i) for i in range(len(browsers))))
        per_s = rounds / (time.perf_counter() - t0)
        cpu = [cpu_seconds(pid) - was for pid, was in zip(pids, cpu, strict=True)]
    finally:
        for c in (*browsers, *apps):
            await c.aclose()
    return rp, per_s, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1000, help="authorization code flows in all")
    ap.add_argument("--concurrency", type=int, default=8, help="people with a session at once")
    ap.add_argument("--seconds", type=int, default=5, help="each wrk run (discovery, JWKS)")
    args = ap.parse_args()
    if args.rounds < 1 or args.concurrency < 1 or not 1 <= args.seconds <= 60:
        raise SystemExit("--rounds and --concurrency at least 1, --seconds 1 to 60")
    with tempfile.TemporaryDirectory(prefix="openmfa-bench-oidc-") as tmp:
        dd = DataDir(Path(tmp) / "node")
        dd.root.mkdir()
        port = free_port()
        url = f"http://127.0.0.1:{port}/portal"
        (dd.root / "server.toml").write_text(f'[oidc]\nissuer = "{url}"\n')
        print(f"setting up {args.concurrency} users and a client...", flush=True)
        keys, key = populate(dd, args.concurrency)
        client = register(dd)
        # Codes are taken once per 30-second step: sign in early in a step.
        while time.time() % 30 > 20:
            time.sleep(0.5)
        node = start_node(dd, radius="off")
        folder = Path(tmp) / "portal"
        folder.mkdir()
        (folder / "portal.key").write_text(key + "\n")
        (folder / "portal.key").chmod(0o600)
        (folder / "portal.toml").write_text(
            f'[portal]\nlisten = "127.0.0.1:{port}"\n'
            f'nodes = ["http://127.0.0.1:{node.sdk_port}"]\napi_key_file = "portal.key"\n'
            "attempts_per_minute = 1000000\n"
        )
        portal = start_service(
            ["portal", "serve", "--config", str(folder / "portal.toml")],
            url + "/healthz",
            folder / "portal.log",
        )
        try:
            idle_kib = vm_rss_kib(portal.pid)
            rp, per_s, cpu = asyncio.run(
                flows(url, keys, client, args.rounds, [portal.pid, node.pid])
            )
            claims = verify_id_token(url, rp.first, client[0], rp.nonce)
            after_kib = vm_rss_kib(portal.pid)
            documents = {}
            for name, path in (
                ("discovery", "/.well-known/openid-configuration"),
                ("JWKS", "/oidc/jwks"),
            ):
                cache = httpx.get(url + path).headers.get("cache-control", "(none)")
                wrk_load.wrk(url + path, 1)  # warm-up
                documents[name] = (*wrk_load.wrk(url + path, args.seconds), cache)
            end_kib = vm_rss_kib(portal.pid)
        finally:
            stop(portal)
            node.terminate()
            node.wait(timeout=30)
    print(f"first ID token verified against the JWKS: {json.dumps(claims, sort_keys=True)}")
    line = (
        f"authorization code flow (c={args.concurrency} sessions, {args.rounds} rounds): "
        f"{per_s:.1f} ID tokens per second"
    )
    print(line)
    for name, samples in (
        ("authorization request -> code", rp.authorize_s),
        ("token request -> ID token", rp.token_s),
        ("the round", rp.round_s),
    ):
        p50, p99 = percentiles(samples)
        print(f"  {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  CPU per round: portal {cpu[0] / args.rounds * 1000:.1f} ms, node "
        f"{cpu[1] / args.rounds * 1000:.1f} ms (this machine: {os.cpu_count()} cores)"
    )
    for name, (p50, p99, rps) in ((k, v[:3]) for k, v in documents.items()):
        print(
            f"{name} document (wrk, c={wrk_load.CONCURRENCY}, {args.seconds} s): {rps:.0f} "
            f"per second, p50 {p50:.2f} ms, p99 {p99:.2f} ms; Cache-Control: {documents[name][3]}"
        )
    print(
        f"portal memory (VmRSS): {idle_kib / 1024:.1f} MiB idle, {after_kib / 1024:.1f} MiB "
        f"after {args.concurrency} sign-ins and {args.rounds + 1} rounds, "
        f"{end_kib / 1024:.1f} MiB after the document runs"
    )


if __name__ == "__main__":
    main()
