"""Release keys and bundle signatures (``install.signing``), without a real release."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmfa.errors import InvalidInput
from openmfa.install import signing
from openmfa.install.releases import create_bundle, open_bundle


def test_a_signature_covers_the_manifest_bytes_and_names_its_key(tmp_path: Path) -> None:
    public = signing.create_key(tmp_path / "k")
    key = signing.load_private(tmp_path / "k")
    (tmp_path / "b").mkdir()
    manifest = b'{"version": "1.0"}'
    (tmp_path / "b" / signing.SIGNATURE_FILE).write_bytes(signing.sign(manifest, key))
    assert signing.check_signature(tmp_path / "b", manifest, [public]) == signing.key_id(public)
    assert signing.check_signature(tmp_path / "b", manifest, []) == signing.key_id(public)
    with pytest.raises(InvalidInput, match=r"does not match bundle\.json"):
        signing.check_signature(tmp_path / "b", manifest + b" ", [public])
    other = signing.create_key(tmp_path / "k2")
    with pytest.raises(InvalidInput, match="does not trust"):
        signing.check_signature(tmp_path / "b", manifest, [other])
    (tmp_path / "b" / signing.SIGNATURE_FILE).write_text("not json")
    with pytest.raises(InvalidInput, match="does not match"):
        signing.check_signature(tmp_path / "b", manifest, [public])


def test_pins_are_checked_and_kept_once(tmp_path: Path) -> None:
    public = signing.create_key(tmp_path / "k")
    root = tmp_path / "not-installed-yet"
    assert signing.trust(root, public + "\n") and not signing.trust(root, public)
    assert signing.trusted(root) == [public]
    for bad in ("", "ssh-ed25519 AAAA", signing.PUBLIC_PREFIX + "AAAA"):
        with pytest.raises(InvalidInput):
            signing.trust(root, bad)
    assert signing.check_signature(tmp_path, b"{}", []) == ""  # unsigned, nothing pinned
    with pytest.raises(InvalidInput, match=r"bundle\.sig is missing"):
        signing.check_signature(tmp_path, b"{}", [public])


def test_only_a_checked_private_copy_of_a_bundle_is_installed(tmp_path: Path) -> None:
    """The wheels handed to pip are the copy that was checked, not the bundle's folder (where
    a file could change after the check); a link in the bundle is refused."""
    release = tmp_path / "release"
    (release / "wheels").mkdir(parents=True)
    (release / "wheels" / "openmfa-1.0-py3-none-any.whl").write_bytes(b"one")
    (release / "wheels" / "dep-2.0-py3-none-any.whl").write_bytes(b"two")
    folder = create_bundle(release, "1.0", tmp_path / "bundle")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    version, wheels = open_bundle(folder, scratch)
    assert version == "1.0" and wheels.is_relative_to(scratch)
    assert {p.name for p in wheels.iterdir()} == {
        "openmfa-1.0-py3-none-any.whl",
        "dep-2.0-py3-none-any.whl",
    }
    dep = folder / "wheels" / "dep-2.0-py3-none-any.whl"
    (tmp_path / "elsewhere.whl").write_bytes(b"two")
    dep.unlink()
    dep.symlink_to(tmp_path / "elsewhere.whl")  # the same bytes, through a link
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(InvalidInput, match=r"wheels/dep-2\.0-py3-none-any\.whl"):
        open_bundle(folder, again)
