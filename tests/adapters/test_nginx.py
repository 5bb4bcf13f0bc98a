"""The nginx forward-auth files across an upgrade and a rollback (``openmfa.adapters.nginx``):
the location and auth_request files of the release that moves the registration are written
with the last change (when only its portals answer) and the earlier ones come back with a
rollback. (Through a real nginx, with portals answering: tests/e2e/test_forward_auth.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa.adapters.config import NginxSettings
from openmfa.adapters.nginx import FILES, Nginx

OLD_LOCATION = "# an older release's location file\nlocation = /internal/openmfa { internal; }\n"
OLD_AUTHREQUEST = "# an older release's auth_request lines\nauth_request /internal/openmfa;\n"


@pytest.fixture
def nginx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Nginx:
    monkeypatch.setattr(Nginx, "_answers", lambda self, portal: True)
    # `true -t` and `true -s reload`: the check and the reload succeed (the real nginx judges
    # these files in tests/e2e/test_forward_auth.py).
    return Nginx(NginxSettings(tmp_path, ["127.0.0.1:9001"], "/portal", ["true"]))


def _with_portals(nginx: Nginx, portals: list[str]) -> Nginx:
    s = nginx.settings
    return Nginx(NginxSettings(s.dir, portals, s.prefix, s.nginx))


def test_an_upgrade_writes_this_releases_files_and_a_rollback_puts_the_old_ones_back(
    nginx: Nginx, tmp_path: Path
) -> None:
    nginx.register()
    (tmp_path / FILES[1]).write_text(OLD_LOCATION)  # as an older release left them
    (tmp_path / FILES[2]).write_text(OLD_AUTHREQUEST)
    saved = tmp_path / "saved.json"
    said: list[str] = []
    newer = _with_portals(nginx, ["127.0.0.1:9002"])
    assert newer.upgrade(saved, said.append).portals == ["127.0.0.1:9002"]
    assert (tmp_path / FILES[1]).read_text() == newer.includes()[FILES[1]]
    assert (tmp_path / FILES[2]).read_text() == newer.includes()[FILES[2]]
    assert "proxy_pass http://openmfa_forward_auth/portal/auth;" in newer.includes()[FILES[1]]
    assert said[-1].startswith("only 127.0.0.1:9002 now")

    assert newer.rollback(saved, said.append).portals == ["127.0.0.1:9001"]
    assert (tmp_path / FILES[1]).read_text() == OLD_LOCATION
    assert (tmp_path / FILES[2]).read_text() == OLD_AUTHREQUEST
    upstream = (tmp_path / FILES[0]).read_text()
    assert "server 127.0.0.1:9001 max_fails" in upstream and "9002" not in upstream


def test_a_move_to_the_same_portals_lists_each_once(nginx: Nginx, tmp_path: Path) -> None:
    nginx.register()
    seen: list[str] = []
    nginx._write = lambda texts: seen.append(texts[FILES[0]])  # type: ignore[method-assign]
    nginx.upgrade(tmp_path / "saved.json", lambda _: None)
    for upstream in seen:  # in front and as backup at once: once, in front
        assert upstream.count("server 127.0.0.1:9001") == 1, upstream
        assert "backup;" not in upstream


def test_a_saved_file_of_an_older_release_rolls_back_the_portals_only(
    nginx: Nginx, tmp_path: Path
) -> None:
    nginx.register()
    saved = tmp_path / "saved.json"
    saved.write_text('{"config_version": 1, "portals": ["127.0.0.1:9003"]}')  # no "files"
    before = (tmp_path / FILES[1]).read_text()
    assert nginx.rollback(saved, lambda _: None).portals == ["127.0.0.1:9003"]
    assert (tmp_path / FILES[1]).read_text() == before
