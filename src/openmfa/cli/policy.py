"""`openmfa policy ...`: the ordered rules of who must prove what (``node.policy_rules``)."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.policy import (
    CHANNELS,
    DEFAULT_RULE,
    METHODS,
    PIN_ELSEWHERE,
    PIN_MODES,
    SECOND_FACTOR,
    SOURCES,
    Context,
    Rule,
)
from ..node.accounts import Accounts
from ..node.policy import verify_policy
from ..node.policy_rules import PolicyRules
from .common import data_dir_option, fails_cleanly, opened


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options, each perhaps a comma-separated list."""
    return tuple(v for value in values for v in value.split(",") if v.strip())


@click.group()
def policy() -> None:
    """Policy rules: which methods, whether a second factor, by channel, client, group and
    source network. The first rule that matches decides; the default rule comes last."""


@policy.command("list")
@data_dir_option
@fails_cleanly
def policy_list(data_dir: Path) -> None:
    """The rules in the order they are tried, the default rule last."""
    with opened(data_dir) as (store, _):
        rules = PolicyRules(store).all()
    for i, r in enumerate([*rules, DEFAULT_RULE], 1):
        click.echo(f"{i}\t{r.name}\t{r.describe()}")


@policy.command("add")
@click.argument("name")
@click.option("--channel", "channels", multiple=True, help=f"Match one of: {', '.join(CHANNELS)}.")
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="Match a RADIUS client, OpenID Connect client or API key by name (with --channel).",
)
@click.option("--group", "groups", multiple=True, help="Match a person in any of these groups.")
@click.option(
    "--source",
    "networks",
    multiple=True,
    help="Match a source address in this network (CIDR; repeat or comma-separate).",
)
@click.option(
    "--source-from",
    type=click.Choice(SOURCES),
    default="address",
    show_default=True,
    help="RADIUS: the NAS's address, or the Calling-Station-Id it reports.",
)
@click.option(
    "--methods", "methods", multiple=True, help=f"Allow only these: {', '.join(METHODS)}."
)
@click.option("--numbered-push", is_flag=True, help="A push must show a number to type.")
@click.option(
    "--second-factor",
    type=click.Choice(SECOND_FACTOR),
    default="require",
    show_default=True,
)
@click.option("--pin", type=click.Choice(PIN_MODES), default="off", show_default=True)
@click.option(
    "--pin-elsewhere",
    type=click.Choice(PIN_ELSEWHERE),
    default="refuse",
    show_default=True,
    help="With --pin required: where no PIN can travel (MS-CHAPv2, EAP), refuse or push.",
)
@click.option("--lockout-threshold", type=int, help="Failures that lock (instead of [policy]).")
@click.option(
    "--remember-minutes",
    type=int,
    default=0,
    show_default=True,
    help="How long a success is remembered: at the portal (channels portal, forward-auth, "
    "oidc), how long 'Remember this browser' lasts; RADIUS with --cache-uses: the cache window.",
)
@click.option(
    "--cache-uses",
    type=int,
    default=0,
    show_default=True,
    help="RADIUS: requests of the same person, client and Calling-Station-Id a full success "
    "lets in with the password alone within --remember-minutes (farm-wide).",
)
@click.option("--position", type=int, help="Where in the list (1 first; default: last).")
@click.option(
    "--allow-no-mfa",
    is_flag=True,
    help="Allow a rule that skips the second factor with no source network.",
)
@data_dir_option
@fails_cleanly
def policy_add(
    name: str,
    channels: tuple[str, ...],
    clients: tuple[str, ...],
    groups: tuple[str, ...],
    networks: tuple[str, ...],
    source_from: str,
    methods: tuple[str, ...],
    numbered_push: bool,
    second_factor: str,
    pin: str,
    pin_elsewhere: str,
    lockout_threshold: int | None,
    remember_minutes: int,
    cache_uses: int,
    position: int | None,
    allow_no_mfa: bool,
    data_dir: Path,
) -> None:
    """Add a rule NAME."""
    rule = Rule(
        name,
        channels=_split(channels),
        clients=_split(clients),
        groups=_split(groups),
        networks=_split(networks),
        source=source_from,
        methods=_split(methods),
        numbered=numbered_push,
        second_factor=second_factor,
        pin=pin,
        pin_elsewhere=pin_elsewhere,
        lockout_threshold=lockout_threshold,
        remember_minutes=remember_minutes,
        cache_uses=cache_uses,
    )
    with opened(data_dir) as (store, _):
        rules = PolicyRules(store)
        added = rules.add(rule, position=position, allow_no_mfa=allow_no_mfa)
        at = [r.name for r in rules.all()].index(added.name) + 1
    click.echo(f"added rule {added.name} at {at}: {added.describe()}")


@policy.command("move")
@click.argument("name")
@click.argument("position", type=int)
@data_dir_option
@fails_cleanly
def policy_move(name: str, position: int, data_dir: Path) -> None:
    """Move rule NAME to POSITION (1 first)."""
    with opened(data_dir) as (store, _):
        PolicyRules(store).move(name, position)
    click.echo(f"moved rule {name} to {position}")


@policy.command("remove")
@click.argument("name")
@data_dir_option
@fails_cleanly
def policy_remove(name: str, data_dir: Path) -> None:
    """Remove rule NAME."""
    with opened(data_dir) as (store, _):
        PolicyRules(store).remove(name)
    click.echo(f"removed rule {name}")


@policy.command("test")
@click.argument("user")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option("--client", default="", help="The RADIUS client, OpenID Connect client or API key.")
@click.option("--source", default="", help="The source address.")
@click.option("--calling-station", default="", help="RADIUS: the Calling-Station-Id.")
@data_dir_option
@fails_cleanly
def policy_test(
    user: str, channel: str, client: str, source: str, calling_station: str, data_dir: Path
) -> None:
    """Which rule applies to USER signing in this way, and why."""
    with opened(data_dir) as (store, config):
        tested = PolicyRules(store, Accounts(store, config)).test(
            user, Context(channel, client, source, calling_station), verify_policy(config)
        )
    e = tested.explanation
    click.echo(f"rule: {e.rule.name} ({e.rule.describe()})")
    click.echo(f"groups of {user}: {', '.join(tested.groups) or '(none)'}")
    for rule, conditions in e.checked:
        if rule.name == e.rule.name:
            said = ", ".join(f"{c.what} {c.why}" for c in conditions) or "it matches everything"
            click.echo(f"  {rule.name}: applies ({said})")
            continue
        missed = [c for c in conditions if not c.matched]
        said = ", ".join(f"{c.what} {c.why}" for c in missed)
        click.echo(f"  {rule.name}: does not match ({said})")
