"""The servers the OpenMFA Authenticator web app's browser tests (test_authenticator_app.py)
run against: a node with the mobile service inside it, RADIUS and a portal (``Site``);
``openmfa mobile serve`` with WebPush on and an administrator's copy of the app (``OwnApp``),
a WebPush push service on loopback, and the page script standing in for the browser's own
push service; radclient as a RADIUS gateway."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import openmfa
from openmfa.core import push as proto
from openmfa.sdk.client import SdkClient

from .browser import PASSWORD
from .helpers import OPENMFA, Server, cli, free_port, init, server, start_service, stop
from .services import free_udp_port

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
"""The authenticator app's seed of a user who signs in to the portal before the phone app."""
RADIUS_SECRET = "gateway-secret-app"
WEBAPP = Path(openmfa.__file__).parent / "mobile" / "webapp"
"""The shipped app, which an administrator's copy starts from."""


@dataclass
class Site:
    dd: Path
    node: Server
    mobile: str
    """The mobile service inside the node, as phones reach it (localhost: a WebAuthn relying
    party must be a host name, not an address)."""
    portal: str
    admin: str
    radius_port: int
    base: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def sdk(self) -> SdkClient:
        return SdkClient(self.node.url, self.admin)

    def person(self, user: str, *, password: bool = False, totp: bool = False) -> None:
        """A user (with the portal password, and an authenticator app's seed)."""
        with self.sdk() as sdk:
            sdk.create_user(user)
            if totp:
                sdk.enroll(user, "totp", secret=SEED)
        if password:
            subprocess.run(
                [OPENMFA, "user", "set-password", user, "--password-stdin",
                 "--data-dir", str(self.dd)],
                input=PASSWORD + "\n", text=True, check=True, capture_output=True,
            )  # fmt: skip

    def link(self, user: str) -> str:
        """The activation link an administrator gives (the QR code's, or what ``openmfa
        device activate`` prints)."""
        with self.sdk() as sdk:
            made = sdk.issue_activation(user)
        assert made.qr_text == f"{made.url}/app/#activate={made.code}", made
        return made.qr_text


@contextmanager
def serving_site(base: Path, *, oidc: bool = False) -> Iterator[Site]:
    """A node serving the mobile service inside it (phones reach it at localhost), RADIUS with
    a gateway that challenges for a push, and a portal (``oidc``: the OpenID Connect provider,
    its issuer the portal's URL)."""
    dd = base / "node"
    admin = init(dd)
    port, udp, portal_port = free_port(), free_udp_port(), free_port()
    mobile = f"http://localhost:{port}/mobile"
    portal = f"http://127.0.0.1:{portal_port}/portal"
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\nenabled = true\npublic_url = "{mobile}"\nmin_gap_seconds = 0.0\n')
        if oidc:
            f.write(f'\n[oidc]\nissuer = "{portal}"\n')
    cli(dd, "radius", "client", "add", "gw", "--address", "127.0.0.1",
        "--secret", RADIUS_SECRET, "--push", "challenge")  # fmt: skip
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    procs: list[subprocess.Popen[str]] = []
    with server(dd, port=port, radius=f"127.0.0.1:{udp}") as node:
        try:
            folder = base / "portal"
            folder.mkdir()
            (folder / "portal.key").write_text(key + "\n")
            (folder / "portal.key").chmod(0o600)
            (folder / "portal.toml").write_text(
                f'[portal]\nlisten = "127.0.0.1:{portal_port}"\nnodes = ["{node.url}"]\n'
                'api_key_file = "portal.key"\nattempts_per_minute = 1000\n'
            )
            argv = ["portal", "serve", "--config", str(folder / "portal.toml")]
            procs.append(start_service(argv, portal + "/healthz", folder / "portal.log"))
            yield Site(dd, node, mobile, portal, admin, udp, base, procs)
        finally:
            for proc in procs:
                stop(proc)


class PushService:
    """A WebPush push service on loopback (RFC 8030 delivery): it keeps what it is sent."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class OwnApp:
    """``openmfa mobile serve`` with WebPush on and ``app_dir``: a copy of the app in tmp."""

    config: Path
    app: Path
    url: str
    pushes: PushService
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        ready = self.url.replace("localhost", "127.0.0.1") + "/v1/info"
        argv = ["mobile", "serve", "--config", str(self.config)]
        self.proc = start_service(argv, ready, self.config.with_suffix(".log"))

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def link(self, site: Site, user: str) -> str:
        """An activation link to this service's app."""
        return self.url + "/app/#" + site.link(user).split("#", 1)[1]

    def held(self) -> int:
        """Device polls this service holds open now."""
        got = httpx.get(self.url.replace("localhost", "127.0.0.1") + "/healthz").json()
        return int(got["held"])


@contextmanager
def serving_own_app(site: Site) -> Iterator[OwnApp]:
    """``openmfa mobile serve`` beside the site's node, on a copy of the shipped app."""
    folder = site.base / "mobile"
    folder.mkdir()
    app = folder / "webapp"
    shutil.copytree(WEBAPP, app)
    key = cli(site.dd, "apikey", "create", "mobile", "--scope", "mobile").stdout.split()[-1]
    (folder / "mobile.key").write_text(key + "\n")
    (folder / "mobile.key").chmod(0o600)
    subprocess.run(
        [OPENMFA, "mobile", "vapid-key", str(folder / "vapid.pem")], check=True, capture_output=True
    )
    port = free_port()
    config = folder / "mobile.toml"
    config.write_text(
        f'[mobile]\nlisten = "127.0.0.1:{port}"\nnodes = ["{site.node.url}"]\n'
        'api_key_file = "mobile.key"\nlong_poll_seconds = 3\napp_dir = "webapp"\n'
        'webpush_vapid_key_file = "vapid.pem"\nwebpush_allow_http = true\n'
    )
    pushes = PushService()
    served = OwnApp(config, app, f"http://localhost:{port}/mobile", pushes)
    try:
        served.start()
        yield served
    finally:
        served.stop()
        pushes.close()


def subscribing(endpoint: str) -> tuple[str, ec.EllipticCurvePrivateKey, bytes]:
    """A page script standing in for the browser's push service at its one point: its
    ``PushManager.subscribe`` (Chromium's own cannot reach Google's service from here) answers
    a subscription at ``endpoint`` with real receiving keys; the script and those keys."""
    receiving = ec.generate_private_key(ec.SECP256R1())
    point = receiving.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    keys = {"p256dh": proto.b64u(point), "auth": proto.b64u(auth)}
    script = """(() => {
      if (typeof PushManager === 'undefined') return;
      const json = {endpoint: ENDPOINT, expirationTime: null, keys: KEYS};
      const sub = {endpoint: json.endpoint, expirationTime: null, toJSON: () => json,
                   unsubscribe: async () => true};
      PushManager.prototype.subscribe = async function () { return sub; };
      PushManager.prototype.getSubscription = async function () { return sub; };
    })();""".replace("ENDPOINT", json.dumps(endpoint)).replace("KEYS", json.dumps(keys))
    return script, receiving, auth


def radclient(
    site: Site, attrs: dict[str, str], timeout: float = 2
) -> tuple[str | None, dict[str, str]]:
    """radclient as the gateway at 127.0.0.1 (a RADIUS client with ``--push challenge``)."""
    lines = [f'{k} = "{v}"' if not v.startswith("0x") else f"{k} = {v}" for k, v in attrs.items()]
    lines.append("Message-Authenticator = 0x00")
    out = subprocess.run(
        ["radclient", "-x", "-t", str(timeout), "-r", "1",
         f"127.0.0.1:{site.radius_port}", "auth", RADIUS_SECRET],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    m = re.search(r"^Received (\S+) Id", out, re.M)
    if not m:
        return None, {}
    found = dict(re.findall(r"^\s+(\S+) = (.+)$", out[m.end() :], re.M))
    return m.group(1), {k: v.strip('"') for k, v in found.items()}
