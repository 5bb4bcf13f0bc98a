"""`openmfa adapter ...`: identity providers ask OpenMFA for the second factor (the AD FS
adapter's verbs, as one tool: register, unregister, export, status, the global policy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import fails_cleanly

IDPS = click.Choice(["lemonldap"])


def _config_option(fn: Any) -> Any:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=Path("adapter.toml"),
        show_default=True,
        help="The adapters' settings (openmfa adapter default-config > adapter.toml).",
    )(fn)


def _opened(config_path: Path) -> tuple[Any, Any]:
    from ..adapters.config import load
    from ..adapters.lemonldap import LemonLdap
    from ..errors import ConfigError

    if not config_path.exists():
        raise ConfigError(
            f"{config_path} does not exist; write one with "
            f"`openmfa adapter default-config > {config_path}` and set its api_key_file"
        )
    cfg = load(config_path)
    return cfg, LemonLdap(cfg.lemonldap)


def _show(reg: Any) -> None:
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
    cfg, llng = _opened(config_path)
    _preflight(cfg)
    _show(llng.register(cfg.node_url, cfg.api_key))


def _preflight(cfg: Any) -> None:
    """The node answers and the key is an adapter key (an error otherwise, nothing changed)."""
    from ..sdk.client import SdkClient

    verify: Any = True
    if cfg.ca_file:
        import ssl

        verify = ssl.create_default_context(cafile=cfg.ca_file)
    with SdkClient(cfg.node_url, cfg.api_key, verify=verify) as sdk:
        sdk.adapter_verify("", "")


def _saved(config_path: Path) -> Path:
    return config_path.with_name(config_path.stem + "-lemonldap.previous.json")


@adapter.command("upgrade")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_upgrade(idp: str, config_path: Path) -> None:
    """Move IDP to this adapter.toml's registration with no moment without a second factor:
    beside the old one for the canary, then everyone, then in its place (the old one is kept
    for `adapter rollback`)."""
    import time

    cfg, llng = _opened(config_path)
    _preflight(cfg)
    to = llng.instance(cfg.node_url, cfg.api_key)
    _show(llng.upgrade(to, _saved(config_path), click.echo, time.sleep))


@adapter.command("rollback")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_rollback(idp: str, config_path: Path) -> None:
    """Back to the registration the last upgrade replaced, the same way (no gap)."""
    import time

    _, llng = _opened(config_path)
    _show(llng.rollback(_saved(config_path), click.echo, time.sleep))


@adapter.command("unregister")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_unregister(idp: str, config_path: Path) -> None:
    """Remove OpenMFA from IDP (refused while it is the only second factor and one is required)."""
    _, llng = _opened(config_path)
    _show(llng.unregister())


@adapter.command("status")
@click.argument("idp", type=IDPS)
@_config_option
@fails_cleanly
def adapter_status(idp: str, config_path: Path) -> None:
    """What IDP holds for OpenMFA now."""
    _, llng = _opened(config_path)
    _show(llng.status())


@adapter.command("export")
@click.argument("idp", type=IDPS)
@_config_option
@click.option("--with-secrets", is_flag=True, help="Include the adapter key (redacted otherwise).")
@fails_cleanly
def adapter_export(idp: str, config_path: Path, with_secrets: bool) -> None:
    """Print IDP's OpenMFA registration as JSON (the adapter key redacted unless asked)."""
    _, llng = _opened(config_path)
    click.echo(json.dumps(llng.status().as_export(redact=not with_secrets), indent=2))


@adapter.command("policy")
@click.argument("idp", type=IDPS)
@click.argument("state", type=click.Choice(["require", "off"]))
@_config_option
@fails_cleanly
def adapter_policy(idp: str, state: str, config_path: Path) -> None:
    """The global MFA policy: require a second factor at every sign-in, or turn it off."""
    _, llng = _opened(config_path)
    _show(llng.policy(state == "require"))


@adapter.command("default-config")
def adapter_default_config() -> None:
    """Print the shipped adapter.toml (every setting, commented)."""
    from ..adapters.config import default_text

    click.echo(default_text(), nl=False)
