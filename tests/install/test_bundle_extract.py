"""A bundle's archive is unpacked only as plain files inside the folder, with or without the
extraction filters of Python's tarfile (Debian 12's python3 3.11.2 has none)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from openmfa.errors import InvalidInput
from openmfa.install.releases import open_bundle


def _archive(path: Path, members: list[tuple[str, bytes | None, str]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


@pytest.fixture(params=["filters", "no filters"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no filters":
        monkeypatch.delattr(tarfile, "data_filter")
    return str(request.param)


@pytest.mark.parametrize(
    "members",
    [
        [("b/../../escaped.txt", b"x", "")],
        [("b/link", None, "/etc/passwd")],
    ],
    ids=["path out of the folder", "symlink"],
)
def test_a_bundle_that_reaches_outside_is_refused(
    python: str, members: list[tuple[str, bytes | None, str]], tmp_path: Path
) -> None:
    bad = _archive(tmp_path / "bad.tar.gz", members)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(InvalidInput) as err:
        open_bundle(bad, into)
    assert "is not a readable bundle" in err.value.message
    assert not (tmp_path / "escaped.txt").exists()


def test_a_plain_bundle_unpacks_with_or_without_filters(python: str, tmp_path: Path) -> None:
    good = _archive(tmp_path / "good.tar.gz", [("b/bundle.json", b"{}", "")])
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(InvalidInput) as err:  # unpacked, then found to be no manifest of ours
        open_bundle(good, into)
    assert "bundle.json of" in err.value.message and "damaged" in err.value.message
    assert (into / "b" / "bundle.json").read_bytes() == b"{}"
