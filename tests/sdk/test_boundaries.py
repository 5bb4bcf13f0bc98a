"""The apps that run on other hosts (portal, console, mobile service, adapters) reach a node only
through the SDK: nothing they import may bring in the store, the node or the farm."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "openmfa"
APPS = ("portal", "console", "mobile", "adapters")
FORBIDDEN = ("openmfa.store", "openmfa.node", "openmfa.farm", "openmfa.radius", "openmfa.install")
CLIENT_SIDE = ["openmfa.sdk", "openmfa.sdk.client", "openmfa.sdk.models", "openmfa.sdk.errors"]


def app_modules() -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((SRC / app).rglob("*.py")) if (SRC / app).is_dir() else []:
            rel = path.relative_to(SRC.parent).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found.append(".".join(parts))
    return found


def imported_names(path: Path, module: str) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions)."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
    return names


def test_the_apps_and_the_client_side_of_the_sdk_import_no_part_of_the_node() -> None:
    modules = CLIENT_SIDE + app_modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = [m for m in out.stdout.split('"') if m.startswith("openmfa.")]
    bad = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert bad == [], f"{modules} pull in {bad}"


def test_no_app_file_imports_the_node_even_lazily() -> None:
    for app in APPS:
        for path in sorted((SRC / app).rglob("*.py")) if (SRC / app).is_dir() else []:
            module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
            bad = {n for n in imported_names(path, module) if n.startswith(FORBIDDEN)}
            assert not bad, f"{path} imports {bad}: talk to the node through openmfa.sdk"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The static check itself: a file that imports the store is caught."""
    bad = tmp_path / "views.py"
    bad.write_text("def f():\n    from ..store.database import Store\n    return Store\n")
    assert "openmfa.store.database" in imported_names(bad, "openmfa.portal.views")
