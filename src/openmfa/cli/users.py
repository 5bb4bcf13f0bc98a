"""`openmfa user ...`: people."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from ..node.accounts import Accounts
from ..node.groups import Groups, check_group_name
from ..node.passwords import set_password
from ..node.pins import Pins
from ..node.portal import PortalTokens
from ..node.privacy import Privacy
from ..node.roles import ROLES, Roles
from ..node.user_search import UserSearch
from ..sdk.models import UserView
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def user() -> None:
    """Add, show, change and remove users."""


def _print_user(u: UserView) -> None:
    click.echo(f"name:         {u.name}")
    click.echo(f"display name: {u.display_name}")
    click.echo(f"email:        {u.email}")
    click.echo(f"phone:        {u.phone}")
    click.echo(f"enabled:      {'yes' if u.enabled else 'no'}")
    click.echo(f"created:      {when(u.created_at)}")
    if u.locked_until:
        click.echo(f"locked until: {when(u.locked_until)}")
    if u.bypass_until:
        click.echo(f"bypass until: {when(u.bypass_until)}")


@user.command("add")
@click.argument("name")
@click.option("--email", default="")
@click.option("--phone", default="")
@click.option("--display-name", default="")
@data_dir_option
@fails_cleanly
def user_add(name: str, email: str, phone: str, display_name: str, data_dir: Path) -> None:
    """Add a user."""
    with opened(data_dir) as (store, config):
        u = Accounts(store, config).add_user(
            name, email=email, phone=phone, display_name=display_name
        )
    click.echo(f"added user {u.name}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--email", default=None, help="Only the people with this email address.")
@data_dir_option
@fails_cleanly
def user_list(as_json: bool, email: str | None, data_dir: Path) -> None:
    """List users (or find everyone with an email address)."""
    with opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        found: list[UserView] = []
        after = ""
        if email is not None:
            found = UserSearch(store, acc).by_email(email)
        while email is None and (batch := acc.list_users(limit=1000, after=after)):
            found += batch
            after = batch[-1].name
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
        return
    for u in found:
        state = "enabled" if u.enabled else "disabled"
        if u.locked_until:
            state += ", locked"
        click.echo(f"{u.name}\t{state}\t{u.email}")


@user.command("show")
@click.argument("name")
@data_dir_option
@fails_cleanly
def user_show(name: str, data_dir: Path) -> None:
    """Show one user and their methods."""
    with opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        u = acc.get_user(name)
        found = acc.list_methods(name)
    _print_user(u)
    click.echo(f"groups:       {', '.join(u.groups) or '(none)'}")
    if u.manual_groups:
        click.echo(f"  by hand:    {', '.join(u.manual_groups)}")
    if u.directory_groups:
        click.echo(f"  directory:  {', '.join(u.directory_groups)}")
    click.echo(f"PIN:          {'set' if u.pin_set else 'not set'}")
    click.echo(f"console role: {u.role or 'none'}")
    click.echo(f"methods:      {len(found)}")
    for m in found:
        chosen = "  (default)" if m.id == u.default_method else ""
        click.echo(f"  {m.id}  {m.kind}  {m.label}{chosen}")


@user.group("group")
def user_group() -> None:
    """Put people in groups by hand, or take them out (groups from a directory come with
    `openmfa directory sync`)."""


@user_group.command("add")
@click.argument("name")
@click.argument("group")
@data_dir_option
@fails_cleanly
def user_group_add(name: str, group: str, data_dir: Path) -> None:
    """Put NAME in GROUP by hand."""
    with opened(data_dir) as (store, config):
        u = Groups(store, Accounts(store, config)).add(name, group)
    click.echo(f"{u.name} is in group {check_group_name(group)} (by hand)")


@user_group.command("remove")
@click.argument("name")
@click.argument("group")
@data_dir_option
@fails_cleanly
def user_group_remove(name: str, group: str, data_dir: Path) -> None:
    """Take NAME out of GROUP they were put in by hand."""
    with opened(data_dir) as (store, config):
        u = Groups(store, Accounts(store, config)).remove(name, group)
    click.echo(f"{u.name} is no longer in group {check_group_name(group)} by hand")


@user.command("default")
@click.argument("name")
@click.argument("method_id", default="")
@data_dir_option
@fails_cleanly
def user_default(name: str, method_id: str, data_dir: Path) -> None:
    """Choose the method NAME is asked for first (no METHOD_ID: clear the choice)."""
    with opened(data_dir) as (store, config):
        Accounts(store, config).set_default_method(name, method_id)
    click.echo(f"default method of {name}: {method_id or '(none chosen)'}")


@user.command("sign-out-everywhere")
@click.argument("name")
@data_dir_option
@fails_cleanly
def user_sign_out_everywhere(name: str, data_dir: Path) -> None:
    """End every User Portal session of NAME, on every portal (they sign in again)."""
    with opened(data_dir) as (store, config):
        Accounts(store, config).end_sessions(name)
    click.echo(f"ended every portal session of {name}")


@user.command("export")
@click.argument("name")
@data_dir_option
@fails_cleanly
def user_export(name: str, data_dir: Path) -> None:
    """Everything held about NAME, as one JSON document: account, methods and devices (no
    secrets), and every audit record naming them (audited: user.export)."""
    with opened(data_dir) as (store, config):
        said = Privacy(store, config, Accounts(store, config)).export(name)
    click.echo(msgspec.json.format(msgspec.json.encode(said)).decode())


@user.command("erase")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Really: nothing of it can be brought back.")
@data_dir_option
@fails_cleanly
def user_erase(name: str, yes: bool, data_dir: Path) -> None:
    """Erase NAME: the account with its methods and devices, and their name and origins in the
    audit records, on every node (the records stay, under a pseudonym). Data format 16."""
    if not yes:
        raise click.UsageError(f"erasing {name} cannot be undone; add --yes to do it")
    with opened(data_dir) as (store, config):
        pseudonym = Privacy(store, config, Accounts(store, config)).erase(name)
    click.echo(f"erased {name}; their audit records now say {pseudonym}")


def _user_action(name: str, data_dir: Path, action: str) -> None:
    with opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        if action == "delete":
            acc.delete_user(name)
        elif action == "unlock":
            acc.unlock(name)
        else:
            acc.update_user(name, {"enabled": action == "enable"})
    click.echo(f"{action}d user {name}" if action.endswith("e") else f"{action}ed user {name}")


for _action, _help in (
    ("disable", "Refuse every authentication of a user."),
    ("enable", "Allow a disabled user again."),
    ("delete", "Delete a user and all their methods."),
    ("unlock", "Clear a lockout and the failure count."),
):

    def _make(action: str, help_text: str) -> None:
        @user.command(action, help=help_text)
        @click.argument("name")
        @data_dir_option
        @fails_cleanly
        def _cmd(name: str, data_dir: Path) -> None:
            _user_action(name, data_dir, action)

    _make(_action, _help)


@user.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--remove", is_flag=True, help="Remove the user's password instead.")
@data_dir_option
@fails_cleanly
def user_set_password(name: str, password_stdin: bool, remove: bool, data_dir: Path) -> None:
    """Set the password RADIUS clients with --primary local check (stored as argon2id)."""
    if remove:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with opened(data_dir) as (store, config):
        set_password(store, Accounts(store, config), name, password)
    click.echo(f"{'removed the' if remove else 'set the'} password of {name}")


@user.command("access-code")
@click.argument("name")
@click.option(
    "--minutes", type=float, default=60, show_default=True, help="How long the code works."
)
@data_dir_option
@fails_cleanly
def user_access_code(name: str, minutes: float, data_dir: Path) -> None:
    """Give NAME a temporary access code (they lost their phone): it signs them in once, in the
    User Portal or wherever a code is asked, so they can enroll a new method. Shown once."""
    with opened(data_dir) as (store, config):
        code, until = Accounts(store, config).issue_access_code(name, minutes)
    click.echo(f"temporary access code for {name}: {code}")
    click.echo(f"works once, until {when(until)}; tell it to {name} only, in person or by phone")


@user.group("pin")
def user_pin() -> None:
    """A person's PIN, typed before the code where a policy rule says --pin required."""


@user_pin.command("set")
@click.argument("name")
@click.option("--pin-stdin", is_flag=True, help="Read the PIN from standard input.")
@data_dir_option
@fails_cleanly
def user_pin_set(name: str, pin_stdin: bool, data_dir: Path) -> None:
    """Set NAME's PIN (4 to 12 digits; stored as an argon2id hash)."""
    if pin_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = click.prompt("PIN", hide_input=True, confirmation_prompt=True)
    with opened(data_dir) as (store, config):
        Pins(store, Accounts(store, config)).set(name, pin)
    click.echo(f"set the PIN of {name}")


@user_pin.command("clear")
@click.argument("name")
@data_dir_option
@fails_cleanly
def user_pin_clear(name: str, data_dir: Path) -> None:
    """Remove NAME's PIN."""
    with opened(data_dir) as (store, config):
        Pins(store, Accounts(store, config)).clear(name)
    click.echo(f"cleared the PIN of {name}")


@user.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice([*ROLES, "none"]))
@data_dir_option
@fails_cleanly
def user_role(name: str, role: str, data_dir: Path) -> None:
    """Give NAME an operator role in the administration console (admin, helpdesk, auditor), or
    take it away (none). What each role may do: the README's "Administration console"."""
    with opened(data_dir) as (store, config):
        Roles(store, Accounts(store, config), PortalTokens(store, config)).set(name, role)
    click.echo(f"{name} is now {'no operator' if role == 'none' else f'an operator: {role}'}")
