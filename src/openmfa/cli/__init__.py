"""The ``openmfa`` command. Thin: parses, calls the node services, prints.

One module per command group (``cli/users.py`` is ``openmfa user ...``); ``common`` holds what
they share. This module only makes the top-level group and adds the others to it.

Exit codes: 0 success; 1 the operation failed (the message says why and what to do);
2 usage error. ``verify`` exits 1 for a rejected code and 3 when it could not decide.
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from . import (
    adapters,
    apikeys,
    backups,
    console,
    devices,
    directory,
    farm,
    install,
    methods,
    mobile,
    node,
    oidc,
    policy,
    portal,
    radius,
    release_keys,
    tokens,
    users,
)
from .common import group_data_dir_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openmfa")
@group_data_dir_option
def main() -> None:
    """OpenMFA Server: self-hosted multi-factor authentication."""


for command in (
    node.init,
    node.serve,
    node.migrate_cmd,
    node.verify,
    node.bypass,
    node.audit_cmd,
    users.user,
    methods.method,
    tokens.token,
    directory.directory,
    devices.device,
    mobile.mobile,
    portal.portal,
    console.console,
    oidc.oidc,
    adapters.adapter,
    apikeys.apikey,
    policy.policy,
    radius.radius,
    backups.backup,
    install.install_cmd,
    install.upgrade_cmd,
    install.rollback_cmd,
    install.bundle,
    release_keys.release_key,
    farm.farm,
):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
