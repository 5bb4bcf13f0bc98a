"""Which part of ``openmfa`` may import which: the whole matrix, checked on the source.

Every module under ``src/openmfa`` is parsed (``ast``) and every import counted — absolute and
relative, at the top and inside functions, under ``TYPE_CHECKING`` too — as an arrow from its
part (a top-level package or module: ``node``, ``farm``, ``wiring``, ...) to another. An arrow
the matrix does not hold fails, naming the importing module and line: widen ``ALLOWED`` only
on purpose, with a reason beside it.

The node imports only the pure core, the store, the configuration, the errors and the wire
contract; the running node is composed outside it (``wiring``). The apps that run on other
hosts (portal, mobile service, adapters) reach a node only through the SDK's client side, so
nothing they import, however indirectly, is the node, the store, the farm, RADIUS or the
installer (``tests/sdk/test_boundaries.py`` checks the same by importing them).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "openmfa"
ROOT = "openmfa"
"""The package itself (its ``__init__``: the release's version)."""

NODE = {ROOT, "core", "store", "config", "errors", "contract"}
"""What the node may import; ``test_the_node_imports_only_its_foundations`` pins it."""

SDK_SERVER_SIDE = {ROOT, "contract", "core", "errors", "farm", "metrics", "node", "store", "wiring"}

ALLOWED: dict[str, set[str]] = {
    # The foundations.
    ROOT: set(),
    "errors": set(),
    "contract": {"errors"},
    "core": {"errors", "contract"},
    "config": {"errors"},
    "service_config": {"config", "errors"},
    "activation": {"errors"},
    # install.record, install.signing: where the installation pins its release keys, which
    # key_files lists and backups keep (leaf modules that import only errors).
    "store": {ROOT, "config", "errors", "service_config", "install.record", "install.signing"},
    "node": NODE,
    # The node's parts around it.
    "directory": {"config", "errors", "node", "store"},
    # radius.flows opens pushes at the master (farm.push_relay), radius.service reports to the
    # rolling upgrade (farm.wire); primary.py binds to the directory for the first factor.
    "radius": {"config", "contract", "core", "directory", "errors", "farm", "node", "store"},
    # farm.health and farm.rolling probe a node's RADIUS (its codec and client table); the
    # farm's agent runs this host's upgrade (install.upgrader) and reads its record.
    "farm": {ROOT, "config", "contract", "core", "errors", "install", "node", "radius", "store"},
    # The upgrader stops and starts the node and the services beside it, hands RADIUS's socket
    # over, backs the store up and reads the services' configurations.
    "install": {
        "config",
        "console",
        "core",
        "errors",
        "mobile",
        "node",
        "portal",
        "radius",
        "service_config",
        "store",
    },
    # The build-info gauge every part serves reads this host's install record and upgrade
    # journal (leaf modules; the apps call it, so nothing heavier).
    "metrics": {ROOT, "errors", "install.record", "install.journal"},
    # The composition root: the running node and its metrics, and what ``openmfa serve`` runs.
    "wiring": {"config", "directory", "farm", "node", "radius", "store", "wiring_metrics"},
    "wiring_metrics": {"farm", "metrics", "store", "wiring"},
    "mobile_url": {"config", "install", "mobile", "node", "store"},
    "server": {
        "activation",
        "config",
        "console",
        "errors",
        "mobile",
        "mobile_url",
        "node",
        "portal",
        "radius",
        "sdk",
        "store",
        "wiring",
    },
    # The SDK: its client side (what the apps import) is the wire contract and its errors.
    "sdk": {ROOT, "contract", "core", "errors"},
    # Its server side is the node's HTTP routes, imported only by the node (server.py).
    "sdk.app": SDK_SERVER_SIDE,
    "sdk.http": SDK_SERVER_SIDE,
    "sdk.routes": SDK_SERVER_SIDE,
    # The apps on other hosts.
    "portal": {"errors", "metrics", "sdk", "service_config"},
    # The administration console: an app like the portal, whose sessions, limits, languages
    # and headers it shares (the portal is itself an app that reaches the nodes by the SDK).
    "console": {"errors", "portal", "sdk", "service_config"},
    "mobile": {ROOT, "core", "errors", "metrics", "sdk", "service_config"},
    "adapters": {"errors", "service_config"},
    "component": {ROOT, "errors", "sdk"},
    # A component host joining the farm: what each kind of component records (its config).
    "component_join": {
        "adapters",
        "component",
        "console",
        "errors",
        "farm",
        "mobile",
        "node",
        "portal",
        "service_config",
    },
    # The adapter host's agent carries out the farm's upgrade orders (farm.agent, install) and
    # finds its service unit as the node does (node.control).
    "adapter_agent": {"adapters", "errors", "farm", "install", "node", "sdk"},
    # The command line reaches everything.
    "cli": {
        ROOT,
        "adapter_agent",
        "adapters",
        "component",
        "component_join",
        "config",
        "console",
        "core",
        "directory",
        "errors",
        "farm",
        "install",
        "mobile",
        "mobile_url",
        "node",
        "portal",
        "sdk",
        "server",
        "service_config",
        "store",
    },
}

APPS = ("portal", "console", "mobile", "adapters")
NEVER_IN_APPS = ("node", "store", "farm", "radius", "install", "wiring", "server")
"""What no app may load, however indirectly (but what ``APPS_MAY_LOAD`` names)."""
APPS_MAY_LOAD = {"install", "install.record", "install.journal"}
"""The two leaf modules the build-info gauge reads (``metrics``), and their package's
``__init__`` (a docstring)."""


@dataclass(frozen=True)
class Arrow:
    module: str
    line: int
    target: str
    """The module imported (the longest known module its name starts with)."""


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def known(name: str, known_modules: dict[str, Path]) -> str:
    while name not in known_modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(module: str, path: Path, known_modules: dict[str, Path]) -> list[Arrow]:
    """Every import of ``openmfa`` in the file, wherever it is."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names = [f"{base}.{a.name}" for a in node.names]  # a name may be a submodule
        else:
            continue
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                found.append(Arrow(module, node.lineno, known(name, known_modules)))
    return found


def part(module: str) -> str:
    """The part a module belongs to: ``openmfa.node.push`` -> ``node``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def rule_for(module: str) -> str:
    """The matrix's key for a module: itself when named there (``sdk.app``), else its part."""
    inner = module.split(".", 1)[1] if "." in module else ROOT
    while inner not in ALLOWED and "." in inner:
        inner = inner.rsplit(".", 1)[0]
    return inner if inner in ALLOWED else part(module)


def permits(allowed: set[str], target: str) -> bool:
    inner = target.split(".", 1)[1] if "." in target else ROOT
    return any(inner == a or inner.startswith(a + ".") for a in allowed) or part(target) in allowed


def violations(arrows: list[Arrow]) -> list[str]:
    bad: list[str] = []
    for a in dict.fromkeys(arrows):  # one line may import several names of one module
        key = rule_for(a.module)
        if part(a.target) == part(a.module) or key not in ALLOWED:
            continue
        if not permits(ALLOWED[key], a.target):
            bad.append(
                f"{a.module} line {a.line} imports {a.target}: {key} may import only "
                f"{sorted(ALLOWED[key])} (tests/test_layers.py ALLOWED)"
            )
    return bad


def all_arrows() -> list[Arrow]:
    known_modules = modules()
    return [a for m, p in known_modules.items() for a in imports(m, p, known_modules)]


def test_every_import_is_an_arrow_the_matrix_allows() -> None:
    bad = violations(all_arrows())
    assert not bad, "imports the layers do not allow:\n" + "\n".join(bad)


def test_every_part_has_a_row_in_the_matrix() -> None:
    parts = {part(m) for m in modules()}
    assert parts - ALLOWED.keys() == set(), "a new part of openmfa: give it a row in ALLOWED"


def test_the_node_imports_only_its_foundations() -> None:
    assert ALLOWED["node"] == NODE == {ROOT, "core", "store", "config", "errors", "contract"}


def test_the_apps_load_no_part_of_the_node_even_indirectly() -> None:
    """Follows every import (lazy ones too) from each app's modules, and the packages that
    loading a module runs first (``openmfa.sdk`` for ``openmfa.sdk.client``)."""
    known_modules = modules()
    graph: dict[str, set[str]] = {m: set() for m in known_modules}
    for a in all_arrows():
        graph[a.module].add(a.target)
    for app in APPS:
        assert not {n.split(".")[0] for n in ALLOWED[app]} & set(NEVER_IN_APPS), app
        start = [m for m in known_modules if part(m) == app]
        seen, todo = set(start), list(start)
        came_from: dict[str, str] = {}
        while todo:
            m = todo.pop()
            parents = [m.rsplit(".", i)[0] for i in range(1, m.count(".") + 1)]
            parents = [p for p in parents if p in known_modules]  # not a namespace package
            for nxt in [*graph[m], *parents]:
                if nxt not in seen:
                    seen.add(nxt)
                    came_from[nxt] = m
                    todo.append(nxt)
        for m in sorted(seen):
            inner = m.split(".", 1)[1] if "." in m else ROOT
            if part(m) in NEVER_IN_APPS and inner not in APPS_MAY_LOAD:
                chain = [m]
                while chain[-1] in came_from:
                    chain.append(came_from[chain[-1]])
                raise AssertionError(f"{app} loads {m}: " + " <- ".join(chain))


def test_the_check_sees_a_backwards_arrow_and_names_where(tmp_path: Path) -> None:
    """The check itself, on a file of its own: a node module that imports the farm lazily."""
    bad = tmp_path / "lock.py"
    bad.write_text("def f():\n    from ..farm import membership\n    return membership\n")
    arrows = imports("openmfa.node.lock", bad, modules())
    assert [(a.line, a.target) for a in arrows] == [(2, "openmfa.farm.membership")]
    (found,) = violations(arrows)
    assert found.startswith("openmfa.node.lock line 2 imports openmfa.farm.membership: node may")
    assert violations([Arrow("openmfa.sdk.app", 1, "openmfa.wiring")]) == []
    assert violations([Arrow("openmfa.sdk.client", 1, "openmfa.wiring")]) != []
    assert violations([Arrow("openmfa.metrics", 1, "openmfa.install.upgrader")]) != []
