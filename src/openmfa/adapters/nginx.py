"""Forward-auth through nginx: the files nginx includes, written by ``openmfa adapter register
nginx`` and moved by ``adapter upgrade|rollback nginx`` with no moment without a second factor.

Three files in ``[nginx] dir``: the upstream of the portals answering ``/auth``
(``openmfa-upstream.conf``), the internal location the protected sites ask
(``openmfa-location.conf``) and the lines a protected location includes
(``openmfa-authrequest.conf``). Each change is checked with ``nginx -t`` before nginx reloads
(and put back when the check fails), so a broken file never reaches the running nginx.

nginx fails closed by itself: when no portal answers, ``auth_request`` is an error (5xx) and
the site is never reached. An upgrade puts the new portals in front with the old ones as
``backup`` (nginx asks the old ones only while no new one answers), waits until the new ones
answer, then leaves only them; the cookie a person holds is taken by both (the portals share
``[forward_auth] key_file``), so nobody signs in again. ``rollback`` goes back the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..errors import ConfigError
from .config import CONFIG_VERSION, NginxSettings
from .lemonldap import IdpError

UPSTREAM = "openmfa_forward_auth"
FILES = ("openmfa-upstream.conf", "openmfa-location.conf", "openmfa-authrequest.conf")
LOCATION = """# Written by `openmfa adapter register nginx`: include it in each protected server.
location = /internal/openmfa {{
  internal;{cache}
  proxy_pass http://{upstream}{prefix}/auth;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_pass_request_body off;
  proxy_set_header Content-Length "";
  proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
  proxy_set_header X-Original-Method $request_method;
  proxy_set_header X-Forwarded-For $remote_addr;
}}
"""
AUTHREQUEST = """# Written by `openmfa adapter register nginx`: include it in protected locations.
auth_request /internal/openmfa;
auth_request_set $openmfa_user $upstream_http_remote_user;
auth_request_set $openmfa_email $upstream_http_remote_email;
auth_request_set $openmfa_name $upstream_http_remote_name;
auth_request_set $openmfa_signin $upstream_http_location;
error_page 401 =302 $openmfa_signin;
proxy_set_header Remote-User $openmfa_user;
proxy_set_header Remote-Email $openmfa_email;
proxy_set_header Remote-Name $openmfa_name;
"""


CACHE = """
  # A signed-in person's "yes" is kept a few seconds, keyed by their cookie only (the answer
  # depends on nothing else); a "no" is never kept.
  proxy_cache openmfa_auth;
  proxy_cache_key $cookie_{cookie};
  proxy_cache_valid 200 {seconds}s;
  proxy_ignore_headers Cache-Control Expires Set-Cookie;"""


def upstream_text(
    primary: list[str], backup: list[str], settings: NginxSettings | None = None
) -> str:
    lines = [f"  server {p} max_fails=1 fail_timeout=5s;" for p in primary]
    lines += [f"  server {p} backup;" for p in backup if p not in primary]
    body = "\n".join(lines)
    meta = json.dumps({"config_version": CONFIG_VERSION, "portals": primary, "backup": backup})
    cache = ""
    if settings is not None and settings.cache_seconds > 0:
        cache = (
            f"proxy_cache_path {settings.cache_dir} levels=1 keys_zone=openmfa_auth:4m "
            "max_size=64m inactive=10m use_temp_path=off;\n"
        )
    return (
        f"# Written by `openmfa adapter register|upgrade|rollback nginx`.\n# openmfa: {meta}\n"
        f"{cache}upstream {UPSTREAM} {{\n{body}\n  keepalive 16;\n}}\n"
    )


@dataclass(frozen=True)
class State:
    portals: list[str]
    backup: list[str]


class Nginx:
    def __init__(self, settings: NginxSettings) -> None:
        self.settings = settings
        if not settings.dir.is_dir():
            raise ConfigError(f"[nginx] dir {settings.dir} is not a folder nginx reads")

    def _path(self, name: str) -> Path:
        return self.settings.dir / name

    def _nginx(self, *args: str) -> None:
        proc = subprocess.run(
            [*self.settings.nginx, *args], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise IdpError(f"nginx {' '.join(args)} failed: {said[-1] if said else '?'}")

    def state(self) -> State | None:
        """What the upstream file holds now (None: not registered)."""
        try:
            text = self._path(FILES[0]).read_text("utf-8")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("# openmfa: "):
                data = json.loads(line.removeprefix("# openmfa: "))
                return State(list(data["portals"]), list(data["backup"]))
        return None

    def _write(self, texts: dict[str, str]) -> None:
        """Write the files, check them with ``nginx -t`` and reload; put the old ones back if
        the check fails (the running nginx never sees a broken file)."""
        before: dict[str, str | None] = {}
        for name in texts:
            try:
                before[name] = self._path(name).read_text("utf-8")
            except OSError:
                before[name] = None
        for name, text in texts.items():
            tmp = self._path(name + ".tmp")
            tmp.write_text(text, "utf-8")
            os.replace(tmp, self._path(name))
        try:
            self._nginx("-t")
        except IdpError:
            for name, old in before.items():
                if old is None:
                    self._path(name).unlink(missing_ok=True)
                else:
                    self._path(name).write_text(old, "utf-8")
            raise
        try:
            self._nginx("-s", "reload")
        except IdpError as exc:
            if ".pid" not in exc.message:
                raise
            # nginx is not running: the files are in place for when it starts.

    def includes(self) -> dict[str, str]:
        """This release's location and auth_request files (what the portals it ships answer)."""
        s = self.settings
        cache = ""
        if s.cache_seconds > 0:
            cache = CACHE.format(cookie=s.cookie_name, seconds=s.cache_seconds)
        return {
            FILES[1]: LOCATION.format(upstream=UPSTREAM, prefix=s.prefix, cache=cache),
            FILES[2]: AUTHREQUEST,
        }

    def _included(self) -> dict[str, str]:
        """The location and auth_request files nginx has now."""
        found: dict[str, str] = {}
        for name in FILES[1:]:
            with contextlib.suppress(OSError):
                found[name] = self._path(name).read_text("utf-8")
        return found

    def register(self) -> State:
        s = self.settings
        self._write({FILES[0]: upstream_text(s.portals, [], s), **self.includes()})
        return State(s.portals, [])

    def _answers(self, portal: str) -> bool:
        try:
            url = f"http://{portal}{self.settings.prefix}/healthz"
            return httpx.get(url, timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def move(
        self,
        to: list[str],
        say: Callable[[str], None],
        wait_seconds: float = 60.0,
        includes: dict[str, str] | None = None,
    ) -> State:
        """To the portals ``to``: first in front with the current ones as backup, then (once
        every one of ``to`` answers) alone — and, in that same last change, with ``includes``
        (the location and auth_request files that go with the portals of ``to``): until then
        the old portals may still answer, and they get the requests they were written for."""
        now = self.state()
        if now is None:
            raise IdpError("forward-auth is not registered; `openmfa adapter register nginx`")
        old = now.portals
        self._write({FILES[0]: upstream_text(to, old, self.settings)})
        backup = [p for p in old if p not in to]  # the same portals (upgraded in place): none
        behind = f"{', '.join(backup)} as backup" if backup else "no other portal as backup"
        say(f"new portals {', '.join(to)} in front, {behind}; nginx reloaded")
        deadline = time.monotonic() + wait_seconds
        while not all(self._answers(p) for p in to):
            if time.monotonic() > deadline:
                self._write({FILES[0]: upstream_text(old, [], self.settings)})
                raise IdpError(
                    f"the new portals did not all answer {self.settings.prefix}/healthz within "
                    f"{wait_seconds:g} s; nginx is back on {', '.join(old)}"
                )
            time.sleep(0.2)
        self._write({FILES[0]: upstream_text(to, [], self.settings), **(includes or {})})
        say(f"only {', '.join(to)} now; nginx reloaded")
        return State(to, [])

    def upgrade(self, saved: Path, say: Callable[[str], None]) -> State:
        now = self.state()
        if now is None:
            raise IdpError("forward-auth is not registered; `openmfa adapter register nginx`")
        self._save(saved, now)
        return self.move(self.settings.portals, say, includes=self.includes())

    def _save(self, saved: Path, now: State) -> None:
        """What ``rollback`` goes back to: the portals and the files that went with them."""
        data = {"config_version": CONFIG_VERSION, "portals": now.portals, "files": self._included()}
        saved.write_text(json.dumps(data))

    def rollback(self, saved: Path, say: Callable[[str], None]) -> State:
        try:
            data = json.loads(saved.read_text("utf-8"))
            previous = [str(p) for p in data["portals"]]
            files = {str(k): str(v) for k, v in dict(data.get("files", {})).items() if k in FILES}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise IdpError(
                f"no earlier portals to go back to ({saved} is missing or unreadable)"
            ) from None
        now = self.state()
        if now is not None:
            self._save(saved, now)
        return self.move(previous, say, includes=files)
