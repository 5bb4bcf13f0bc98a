"""A portal, mobile-service, adapter or console host put in the farm's inventory (``openmfa farm
join-component``, run on that host).

It lives beside ``component.py`` rather than in ``farm/``: it runs on the host beside the nodes
and reports through the SDK, as the service itself does, with the key the service already has.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from .component import Identity, Reporter
from .errors import InvalidInput
from .farm.agent import install_state
from .service_config import NAME

KINDS = ("portal", "mobile", "adapter", "console")


def join_component(kind: str, config_path: Path, name: str) -> None:
    """Report once as ``name`` (its scope must be ``kind``), so that the nodes list it, then
    write ``name`` into its config file (``[kind] name``) for the service's own reports."""
    if not NAME.fullmatch(name):
        raise InvalidInput(
            "--name: letters, digits, '.', '_' and '-' (as in HAProxy's server names), up to 63"
        )
    doc = tomlkit.parse(config_path.read_text("utf-8"))
    table = doc.get(kind)
    if table is None:
        raise InvalidInput(f"{config_path} has no [{kind}] table: is it a {kind}.toml?")
    table["name"] = name
    nodes, key, url = _reaches(kind, config_path)
    reporter = Reporter(  # it reports once: an order waits for the service itself
        Identity(name, kind, url),
        nodes,
        key,
        state_file=config_path.resolve().parent / f"{kind}.orders.json",
        local=install_state,
    )
    try:
        reporter.report()
    finally:
        reporter.stop()
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), "utf-8")
    tmp.chmod(config_path.stat().st_mode & 0o777)
    tmp.replace(config_path)


def _reaches(kind: str, config_path: Path) -> tuple[list[str], str, str]:
    """(the nodes it reports to, its API key, the URL it serves at) from its config file."""
    from .node.control import base_url

    if kind == "portal":
        from .portal.config import load as load_portal

        cfg_p = load_portal(config_path)
        url = base_url(cfg_p.host, cfg_p.port, False) + cfg_p.prefix
        return cfg_p.nodes, cfg_p.api_key, url
    if kind == "console":
        from .console.config import load as load_console

        cfg_c = load_console(config_path)
        url = base_url(cfg_c.host, cfg_c.port, False) + cfg_c.prefix
        return cfg_c.nodes, cfg_c.api_key, url
    if kind == "mobile":
        from .mobile.config import load as load_mobile

        cfg_m = load_mobile(config_path)
        url = base_url(cfg_m.host, cfg_m.port, False) + cfg_m.prefix
        return cfg_m.nodes, cfg_m.api_key, url
    from .adapters.config import load as load_adapter

    cfg_a = load_adapter(config_path)
    return [cfg_a.node_url], cfg_a.api_key, cfg_a.node_url
