"""Write docs/configuration.md from the shipped defaults (tests/test_docs.py keeps it in step)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
src = (ROOT / "src" / "openmfa" / "default_server.toml").read_text().strip()
(ROOT / "docs" / "configuration.md").write_text("\n".join([
    "# Configuration reference", "",
    "`server.toml` in the data directory. This page lists every setting with its default and",
    "meaning; it is the shipped `src/openmfa/default_server.toml`, which is also what `openmfa init`",
    "writes. A setting left out takes its default. Unknown settings, wrong types and values outside",
    "the allowed choices are refused at start with the setting's name.", "",
    "Regenerate with `python scripts/config_reference.py`.", "",
    "```toml", src, "```", ""]))
