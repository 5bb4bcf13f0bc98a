"""Themes on upgrade (the seed's "make a backup of App_Themes\\Default … better to create a copy"):
custom theme folders are never touched; the shipped ``Default`` theme is replaced by the new
release's, and when the admin had changed it, the changed copy is saved beside the backup and
reported. ``Default/.shipped.json`` records the checksums of what the release shipped."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

SHIPPED = ".shipped.json"


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SHIPPED
    }


def install_default(themes: Path, shipped: Path) -> bool:
    """Copy a release's shipped Default theme into ``themes/Default``; False if it ships none."""
    src = shipped / "Default"
    if not src.is_dir():
        return False
    dest = themes / "Default"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / SHIPPED).write_text(json.dumps(_digests(dest), indent=2))
    return True


def default_was_changed(themes: Path) -> bool:
    dest = themes / "Default"
    if not dest.is_dir():
        return False
    record = dest / SHIPPED
    if not record.exists():
        return True  # no record of what was shipped: treat as the admin's
    return bool(json.loads(record.read_text()) != _digests(dest))


def upgrade_themes(themes: Path, shipped: Path, save_to: Path) -> list[str]:
    """Keep custom themes, save a changed Default, install the new Default. Returns a report.

    ``save_to/themes-before/`` receives the Default folder as it was, so an undo can put it
    back exactly."""
    report = []
    themes.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in themes.iterdir() if p.is_dir() and p.name != "Default"):
        report.append(f"kept custom theme {folder.name} untouched")
    before = save_to / "themes-before"
    if (themes / "Default").is_dir():
        shutil.rmtree(before, ignore_errors=True)
        shutil.copytree(themes / "Default", before / "Default")
        if default_was_changed(themes):
            changed = save_to / "Default-theme-as-changed"
            shutil.rmtree(changed, ignore_errors=True)
            shutil.copytree(themes / "Default", changed, ignore=shutil.ignore_patterns(SHIPPED))
            report.append(
                f"the Default theme had been changed: your copy is saved in {changed}; "
                "copy it to themes/<YourName> and select that theme to keep it"
            )
    if install_default(themes, shipped):
        report.append("installed the new release's Default theme")
    return report


def undo_themes(themes: Path, save_to: Path) -> None:
    before = save_to / "themes-before" / "Default"
    shutil.rmtree(themes / "Default", ignore_errors=True)
    if before.is_dir():
        shutil.copytree(before, themes / "Default")
