"""server.toml: every value checked, with the key's name and what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openmfa.config import OPTIONAL, ConfigError, default_text, defaults, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_no_file_is_the_defaults_and_the_shipped_file_is_them_too(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.toml").values == defaults()
    assert load(write(tmp_path, default_text())).values == defaults()
    for (section, key), value in OPTIONAL.items():  # shipped commented out, defaulted here
        assert defaults()[section][key] == value
        assert f"# {key} = " in default_text()


def test_a_value_overrides_its_default(tmp_path: Path) -> None:
    cfg = load(
        write(tmp_path, '[server]\nlisten = "127.0.0.1:9000"\n[farm]\nclaim_timeout_seconds = 2\n')
    )
    assert cfg.get("server", "listen") == "127.0.0.1:9000"
    assert cfg.get("farm", "claim_timeout_seconds") == 2  # an int where a float is expected
    assert cfg.get("radius", "listen") == defaults()["radius"]["listen"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[servr]\nlisten = 'x:1'\n", "unknown section [servr] (did you mean 'server'?)"),
        ("[server]\nlisen = 'x:1'\n", "unknown setting [server] lisen (did you mean 'listen'?)"),
        ("[server]\nmax_body_bytes = '64k'\n", "[server] max_body_bytes must be a int"),
        ("[store]\nsqlite_synchronous = 'off'\n", "is not one of 'full', 'normal'"),
        ("[policy]\nlockout_threshold = 0\n", "[policy] lockout_threshold must be greater than 0"),
        ("[policy\n", "is not valid TOML"),
        ("server = 3\n", "[server] must be a table of settings"),
    ],
)
def test_a_wrong_value_is_refused_by_name(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert says in err.value.message and "server.toml" in err.value.message


def test_directory_sources_are_checked_with_their_name(tmp_path: Path) -> None:
    good = '[directory]\n[[directory.sources]]\nname = "corp"\nurl = "ldaps://dc1"\n'
    cfg = load(write(tmp_path, good + 'base_dns = ["dc=x"]\nkind = "ad"\n'))
    (source,) = cfg.get("directory", "sources")
    assert (source["kind"], source["on_leave"], source["page_size"]) == ("ad", "disable", 500)
    for extra, message in (
        ('base_dns = ["dc=x"]\nbind_pw = "x"\n', "unknown setting [directory.sources] bind_pw"),
        ('base_dns = ["dc=x"]\nkind = "nds"\n', "kind must be one of 'ldap', 'ad'"),
        ("", "give base_dns"),
        ('base_dns = ["dc=x"]\npage_size = 0\n', "page_size is 1 to 5000"),
        (
            'base_dns = ["dc=x"]\n[[directory.sources]]\nname = "corp"\nurl = "ldap://b"\n'
            'base_dns = ["dc=y"]\n',
            "two directory sources are named 'corp'",
        ),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load(write(tmp_path, good + extra))
    with pytest.raises(ConfigError, match="url must be ldap"):
        load(write(tmp_path, good.replace("ldaps://dc1", "http://dc1") + 'base_dns = ["x"]\n'))
    with pytest.raises(ConfigError, match="at most 1440"):
        load(write(tmp_path, "[directory]\ninterval_minutes = 2000\n"))
