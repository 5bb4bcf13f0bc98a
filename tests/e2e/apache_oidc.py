"""Apache with Debian's mod_auth_openidc: a real OpenID Connect relying party, as an
organisation puts one in front of an application, signing people in through the portal's
provider (issue 34).

A private Apache (its own ServerRoot and configuration in a new folder; Debian's service and
/etc/apache2 are never touched) runs in the foreground on a free loopback port and is stopped
by its own PID. It protects ``/private/`` with ``AuthType openid-connect``: the authorization
code flow with PKCE S256, the client's secret at the token endpoint (``client_secret_basic``),
scope ``openid profile email``. The page it protects (server-side includes) shows what the
module passes to the application: ``REMOTE_USER`` (the ``preferred_username`` claim) and the
``sub``, ``amr``, ``acr`` and ``preferred_username`` claims. ``/private/passkey/`` lets in
only a sign-in whose ``amr`` has ``hwk`` (``Require claim``).

Plain http on loopback: mod_auth_openidc 2.4 only warns that an http ``OIDCRedirectURI``
SHOULD be https, and takes http provider endpoints (the portal at 127.0.0.1). The site is
``http://localhost:PORT`` and the portal ``http://127.0.0.1:PORT/portal``: two sites, so their
cookies are apart as an application's and the portal's are."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .helpers import free_port, stop, wait_for

APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
RUN_AS = "www-data"
"""Apache refuses to serve as root: its children become this user (the parent stays ours)."""

CONF = """\
ServerRoot "{root}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
ErrorLog "{root}/error.log"
LogLevel warn auth_openidc:{oidc_log}
LogFormat "%h %u \\"%r\\" %>s" brief
CustomLog "{root}/access.log" brief
User {user}
Group {user}
{modules}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
TypesConfig /dev/null
AddType text/html .shtml
AddOutputFilter INCLUDES .shtml
DocumentRoot "{root}/htdocs"
<Directory />
    Require all denied
</Directory>
<Directory "{root}/htdocs">
    Options +Includes
    Require all granted
</Directory>

OIDCProviderMetadataURL {metadata}
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI {site}/private/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCPKCEMethod S256
OIDCScope "openid profile email"
OIDCResponseType code
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs environment
OIDCCookieSameSite On
OIDCSessionInactivityTimeout 600
OIDCHTTPTimeoutShort 10
OIDCHTTPTimeoutLong 20

<Location /private/>
    AuthType openid-connect
    Require valid-user
</Location>
<Location /private/passkey/>
    AuthType openid-connect
    Require claim amr:hwk
</Location>
"""
"""The whole configuration (``format``-ed): nothing from /etc/apache2 is included."""

MODULE_NAMES = (
    "mpm_event",
    "authn_core",
    "authz_core",
    "authz_user",
    "mime",
    "include",
    "auth_openidc",
)

PAGE = """\
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Example application</title><link rel="icon" href="data:,">
</head>
<body>
<main>
<h1>Example application</h1>
<p>Signed in as <strong id="user"><!--#echo var="REMOTE_USER" --></strong>.</p>
<dl>
<dt>sub</dt><dd id="sub"><!--#echo var="OIDC_CLAIM_sub" --></dd>
<dt>preferred_username</dt><dd id="preferred_username"><!--#echo
 var="OIDC_CLAIM_preferred_username" --></dd>
<dt>amr</dt><dd id="amr"><!--#echo var="OIDC_CLAIM_amr" --></dd>
<dt>acr</dt><dd id="acr"><!--#echo var="OIDC_CLAIM_acr" --></dd>
<dt>iss</dt><dd id="iss"><!--#echo var="OIDC_CLAIM_iss" --></dd>
</dl>
</main>
</body>
</html>
"""
"""The protected page: what the module told the application about the person."""


@dataclass
class ApacheSite:
    url: str
    """``http://localhost:PORT``: the site, as people's browsers reach it."""
    folder: Path
    proc: subprocess.Popen[bytes]

    @property
    def page(self) -> str:
        """The protected page."""
        return self.url + "/private/index.shtml"

    @property
    def passkey_page(self) -> str:
        """A page only for people whose second factor was a passkey (``Require claim
        amr:hwk``)."""
        return self.url + "/private/passkey/index.shtml"

    @property
    def redirect_uri(self) -> str:
        """The client's redirect URI (register it exactly with ``openmfa oidc client add``)."""
        return redirect_uri(self.url)

    def log(self) -> str:
        """Apache's error log (mod_auth_openidc's messages)."""
        return (self.folder / "error.log").read_text(errors="replace")

    def claims(self, page: str) -> dict[str, str]:
        """What the protected page (its HTML) shows: ``user`` and the claims."""
        found = dict(re.findall(r'<(?:strong|dd) id="(\w+)">([^<]*)<', page))
        return {k: v.strip() for k, v in found.items()}


def redirect_uri(site: str) -> str:
    return site + "/private/redirect_uri"


def site_url(port: int) -> str:
    return f"http://localhost:{port}"


@contextmanager
def apache_oidc(
    *,
    metadata_url: str,
    client_id: str,
    client_secret: str,
    port: int | None = None,
    debug: bool = False,
) -> Iterator[ApacheSite]:
    """Apache protecting ``/private/`` through the provider at ``metadata_url`` (its discovery
    document), as client ``client_id``; back once it answers. ``port``: the one the client's
    redirect URI names (``redirect_uri(site_url(port))``), or a free one. ``debug``: the module's
    debug messages in the log."""
    if not (MODULES / "mod_auth_openidc.so").exists():
        raise AssertionError("run scripts/system-deps.sh: it installs libapache2-mod-auth-openidc")
    port = port or free_port()
    site = site_url(port)
    # Apache's children run as www-data: the folder must be theirs to read (pytest's temporary
    # folders are root's alone).
    root = Path(tempfile.mkdtemp(prefix="openmfa-apache-"))
    root.chmod(0o755)
    (root / "run").mkdir()
    (root / "htdocs" / "private").mkdir(parents=True)
    (root / "htdocs" / "private" / "passkey").mkdir()
    for where in (root / "htdocs" / "private", root / "htdocs" / "private" / "passkey"):
        (where / "index.shtml").write_text(PAGE)
        (where / "index.shtml").chmod(0o644)
        where.chmod(0o755)
    (root / "htdocs").chmod(0o755)
    (root / "htdocs" / "favicon.ico").write_bytes(b"")  # its error pages link none
    (root / "htdocs" / "favicon.ico").chmod(0o644)
    modules = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in MODULE_NAMES
    )
    conf = root / "httpd.conf"
    conf.write_text(
        CONF.format(
            root=root,
            port=port,
            user=RUN_AS,
            modules=modules,
            oidc_log="debug" if debug else "info",
            metadata=metadata_url,
            client_id=client_id,
            client_secret=client_secret,
            site=site,
            passphrase=secrets.token_urlsafe(32),
        )
    )
    conf.chmod(0o600)  # the client secret and the passphrase: read by the parent, as root
    check = subprocess.run(
        [APACHE, "-t", "-f", str(conf), "-d", str(root)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    out = (root / "apache.out").open("wb")
    proc = subprocess.Popen(
        [APACHE, "-f", str(conf), "-d", str(root), "-DFOREGROUND"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
    )
    served = ApacheSite(site, root, proc)

    def up() -> bool:
        assert proc.poll() is None, (root / "apache.out").read_text() + served.log()
        try:
            # Anything but a refused connection: the module answers an anonymous visit with a
            # redirect to the provider, or an error page while the provider is unreachable.
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    try:
        wait_for(up, f"Apache did not start: see {root}/error.log", 30)
        yield served
    finally:
        stop(proc)
        out.close()
        if not os.environ.get("OPENMFA_KEEP_APACHE"):
            shutil.rmtree(root, ignore_errors=True)
