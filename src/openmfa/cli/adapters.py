"""`openmfa adapter ...`: identity providers ask OpenMFA for the second factor (the AD FS
adapter's verbs, as one tool: register, unregister, export, status, the global policy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import fails_cleanly

IDPS = click.Choice(["lemonldap", "nginx"])


def _config_option(fn: Any) -> Any:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=Path("adapter.toml"),
        show_default=True,
        help="The adapters' settings (openmfa adapter default-config > adapter.toml).",
    )(fn)


def _settings(config_path: Path, *, key: bool = True) -> Any:
    """adapter.toml (with ``key``: and the key the nodes are called with), whatever the
    identity providers: an nginx-only host has no LemonLDAP::NG to find."""
    from ..adapters.config import load
    from ..errors import ConfigError

    if not config_path.exists():
        raise ConfigError(
            f"{config_path} does not exist; write one with "
            f"`openmfa adapter default-config > {config_path}` and set its api_key_file"
        )
    cfg = load(config_path)
    if key and not cfg.api_key:
        raise ConfigError(
            "[adapter] needs an API key of scope adapter: `openmfa apikey create lemonldap "
            "--scope adapter`, then api_key_file = the file holding it"
        )
    return cfg


def _opened(config_path: Path, idp: str = "lemonldap") -> tuple[Any, Any]:
    from ..adapters.lemonldap import LemonLdap
    from ..adapters.nginx import Nginx

    if idp == "nginx":
        cfg = _settings(config_path, key=False)
        return cfg, Nginx(cfg.nginx)
    cfg = _settings(config_path)
    return cfg, LemonLdap(cfg.lemonldap)


def _show(reg: Any) -> None:
    if hasattr(reg, "portals"):  # nginx
        if reg is None or not reg.portals:
            click.echo("nginx forward-auth: not registered")
            return
        backup = f" (backup: {', '.join(reg.backup)})" if reg.backup else ""
        click.echo(f"nginx forward-auth: portals {', '.join(reg.portals)}{backup}")
        return
    instance = reg.instance
    click.echo(f"LemonLDAP::NG configuration {reg.config_number}")
    click.echo(f"  second factor required: {'yes' if reg.required else 'NO'}")
    if instance is None:
        click.echo("  openmfa: not registered")
    else:
        click.echo(
            f"  openmfa: registered (type {instance.get('type')}, level {instance.get('level')},"
            f" label {instance.get('label')!r})"
        )
    others = ", ".join(reg.other_second_factors) or "none"
    click.echo(f"  other second factors: {others}")
    for host, rule in reg.protected.items():
        click.echo(f"  {host}: {rule or '(no default rule)'}")


@click.group()
def adapter() -> None:
    """Identity providers ask OpenMFA for the second factor (LemonLDAP::NG)."""


@adapter.command("register")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_register(idp: str, config_path: Path) -> None:
    """Register OpenMFA as IDP's second factor (and require it): checks first that the node
    answers and that the key is an adapter key, so the IdP never points at a wrong one."""
    cfg, idp_ = _opened(config_path, idp)
    if idp == "nginx":
        _show(idp_.register())
    else:
        _preflight(cfg)
        _show(idp_.register(cfg.node_url, cfg.api_key))
    _remember(config_path, idp, True)


def _remember(config_path: Path, idp: str, registered: bool) -> None:
    """Keep ``[adapter] idps`` (what `openmfa adapter agent` watches and moves) in step."""
    import tomlkit

    doc = tomlkit.parse(config_path.read_text("utf-8"))
    table = doc.setdefault("adapter", tomlkit.table())
    now = [str(i) for i in table.get("idps", [])]
    wanted = sorted({*now, idp}) if registered else [i for i in now if i != idp]
    if wanted == now:
        return
    table["idps"] = wanted
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), "utf-8")
    tmp.chmod(config_path.stat().st_mode & 0o777)
    tmp.replace(config_path)
    click.echo(f"{config_path}: idps = {wanted}")


def _preflight(cfg: Any) -> None:
    """The node answers and the key is an adapter key (an error otherwise, nothing changed)."""
    from ..sdk.client import SdkClient

    with SdkClient(cfg.node_url, cfg.api_key, verify=_verify(cfg)) as sdk:
        sdk.adapter_verify("", "")


def _saved(config_path: Path, idp: str) -> Path:
    return config_path.with_name(f"{config_path.stem}-{idp}.previous.json")


@adapter.command("upgrade")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_upgrade(idp: str, config_path: Path) -> None:
    """Move IDP to this adapter.toml's registration with no moment without a second factor:
    beside the old one for the canary, then everyone, then in its place (the old one is kept
    for `adapter rollback`)."""
    import time

    cfg, idp_ = _opened(config_path, idp)
    if idp == "nginx":
        _show(idp_.upgrade(_saved(config_path, idp), click.echo))
        return
    _preflight(cfg)
    to = idp_.instance(cfg.node_url, cfg.api_key)
    _show(idp_.upgrade(to, _saved(config_path, idp), click.echo, time.sleep))


@adapter.command("rollback")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_rollback(idp: str, config_path: Path) -> None:
    """Back to the registration the last upgrade replaced, the same way (no gap)."""
    import time

    _, idp_ = _opened(config_path, idp)
    if idp == "nginx":
        _show(idp_.rollback(_saved(config_path, idp), click.echo))
        return
    _show(idp_.rollback(_saved(config_path, idp), click.echo, time.sleep))


@adapter.command("unregister")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_unregister(idp: str, config_path: Path) -> None:
    """Remove OpenMFA from IDP (refused while it is the only second factor and one is required)."""
    from ..adapters.lemonldap import IdpError

    if idp == "nginx":
        raise IdpError(
            "nginx's protected sites include OpenMFA's files: removing them would open the "
            "sites, or break nginx. Remove the includes from the sites first, by hand"
        )
    _, llng = _opened(config_path)
    _show(llng.unregister())
    _remember(config_path, idp, False)


@adapter.command("status")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_status(idp: str, config_path: Path) -> None:
    """What IDP holds for OpenMFA now."""
    _, idp_ = _opened(config_path, idp)
    if idp == "nginx":
        now = idp_.state()
        if now is None:
            click.echo("nginx forward-auth: not registered")
            return
    else:
        now = idp_.status()
    _show(now)


@adapter.command("export")
@click.argument("idp", type=IDPS)
@_config_option
@click.option(
    "--redact/--with-secrets",
    default=True,
    help="Redact the adapter key (the default), or include it.",
)
@fails_cleanly
def adapter_export(idp: str, config_path: Path, redact: bool) -> None:
    """Print IDP's OpenMFA registration as JSON (the adapter key redacted unless asked)."""
    _, idp_ = _opened(config_path, idp)
    if idp == "nginx":
        from dataclasses import asdict

        from ..adapters.config import CONFIG_VERSION

        now = idp_.state()
        data = {"config_version": CONFIG_VERSION, "idp": "nginx", **(asdict(now) if now else {})}
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(json.dumps(idp_.status().as_export(redact=redact), indent=2))


@adapter.command("policy")
@click.argument("idp", type=IDPS)
@click.argument("state", type=click.Choice(["require", "off"]))
@_config_option
@fails_cleanly
def adapter_policy(idp: str, state: str, config_path: Path) -> None:
    """The global MFA policy: require a second factor at every sign-in, or turn it off."""
    from ..adapters.lemonldap import IdpError

    if idp == "nginx":
        raise IdpError("nginx has no global policy: each protected location includes auth_request")
    _, llng = _opened(config_path)
    _show(llng.policy(state == "require"))


@adapter.command("agent")
@_config_option
@fails_cleanly
def adapter_agent(config_path: Path) -> None:
    """Report this adapter host to the farm's inventory and carry out the farm's upgrades and
    rollbacks here, until stopped (run it as a service: `openmfa install --components adapter`
    writes its unit). Needs [adapter] name (`openmfa farm join-component --kind adapter`)."""
    import logging
    import os
    import signal

    from ..adapter_agent import LOCK, ORDERS, Health, current_openmfa, launch_move
    from ..component import Identity, Reporter
    from ..errors import ConfigError
    from ..farm.agent import install_state
    from ..install.record import record_path
    from ..node.lock import NodeLock

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line for every report
    cfg = _settings(config_path)
    if not cfg.name:
        raise ConfigError(
            f"{config_path} names no host: `openmfa farm join-component --kind adapter --config "
            f"{config_path} --name NAME` first"
        )
    where = config_path.resolve().parent
    held = NodeLock(where, LOCK).acquire("run the adapter agent")
    record = record_path(None)

    def next_release() -> None:  # the order's command ended well: its release takes over
        argv = [str(current_openmfa(record)), "adapter", "agent", "--config", str(config_path)]
        click.echo(f"the farm's order is done here; starting {argv[0]}")
        reporter.sdk.close()
        held.release()
        os.execv(argv[0], argv)  # noqa: S606 (the same argv, the next release's program)

    reporter = Reporter(
        Identity(cfg.name, "adapter", cfg.node_url),
        [cfg.node_url],
        cfg.api_key,
        state_file=where / ORDERS,
        launch=launch_move(config_path, record),
        local=install_state,
        health=Health(cfg),
        verify=_verify(cfg),
        done=next_release,
    )
    signal.signal(signal.SIGTERM, lambda *_: reporter.halt())
    idps = ", ".join(cfg.idps) or "no identity provider"
    click.echo(f"adapter agent {cfg.name} ({idps}) reporting to {cfg.node_url}")
    try:
        reporter.run()
    finally:
        reporter.sdk.close()
        held.release()


@adapter.command("move-host", hidden=True)
@click.argument("action", type=click.Choice(["upgrade", "rollback"]))
@_config_option
@click.option("--bundle", default="", help="The release to upgrade to (an offline bundle).")
@click.option("--yes", is_flag=True, help="No questions (the agent starts it).")
@click.option("--record", "record_file", type=click.Path(path_type=Path), default=None)
@fails_cleanly
def adapter_move_host(
    action: str, config_path: Path, bundle: str, yes: bool, record_file: Path | None
) -> None:
    """The farm's order on this adapter host (started by `openmfa adapter agent`): this host's
    release and every identity provider's registration, with no gap, or all put back."""
    from ..adapter_agent import move_host, run_checked
    from ..install.record import record_path

    cfg = _settings(config_path)
    move_host(
        action, config_path, record_path(record_file), bundle, cfg.idps, click.echo, run_checked
    )
    click.echo(f"adapter host {cfg.name}: {action} done")


def _verify(cfg: Any) -> Any:
    if not cfg.ca_file:
        return True
    import ssl

    return ssl.create_default_context(cafile=cfg.ca_file)


@adapter.command("default-config")
def adapter_default_config() -> None:
    """Print the shipped adapter.toml (every setting, commented)."""
    from ..adapters.config import default_text

    click.echo(default_text(), nl=False)
