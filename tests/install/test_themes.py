from __future__ import annotations

from pathlib import Path

from openmfa.install.themes import default_was_changed, install_default, undo_themes, upgrade_themes

PACKAGE_THEMES = Path(__file__).resolve().parents[2] / "src" / "openmfa" / "themes"


def shipped(tmp: Path, css: str) -> Path:
    (tmp / "Default").mkdir(parents=True)
    (tmp / "Default" / "theme.css").write_text(css)
    return tmp


def test_the_package_ships_a_default_theme(tmp_path: Path) -> None:
    assert install_default(tmp_path / "themes", PACKAGE_THEMES)
    assert (tmp_path / "themes" / "Default" / "static" / "theme.css").exists()
    assert not default_was_changed(tmp_path / "themes")


def test_unchanged_default_is_replaced_quietly_custom_themes_untouched(tmp_path: Path) -> None:
    themes = tmp_path / "themes"
    install_default(themes, shipped(tmp_path / "v1", "v1"))
    (themes / "Corporate").mkdir()
    (themes / "Corporate" / "theme.css").write_text("ours")
    report = upgrade_themes(themes, shipped(tmp_path / "v2", "v2"), tmp_path / "backup")
    assert (themes / "Default" / "theme.css").read_text() == "v2"
    assert (themes / "Corporate" / "theme.css").read_text() == "ours"
    assert report == [
        "kept custom theme Corporate untouched",
        "installed the new release's Default theme",
    ]
    assert not (tmp_path / "backup" / "Default-theme-as-changed").exists()


def test_changed_default_is_saved_and_reported(tmp_path: Path) -> None:
    themes = tmp_path / "themes"
    install_default(themes, shipped(tmp_path / "v1", "v1"))
    (themes / "Default" / "theme.css").write_text("v1 with our colours")
    (themes / "Default" / "logo.svg").write_text("<svg/>")
    assert default_was_changed(themes)
    report = upgrade_themes(themes, shipped(tmp_path / "v2", "v2"), tmp_path / "backup")
    saved = tmp_path / "backup" / "Default-theme-as-changed"
    assert (saved / "theme.css").read_text() == "v1 with our colours"
    assert (saved / "logo.svg").exists()
    assert any("had been changed" in line and str(saved) in line for line in report)
    # An undo puts the admin's changed Default back exactly.
    undo_themes(themes, tmp_path / "backup")
    assert (themes / "Default" / "theme.css").read_text() == "v1 with our colours"
