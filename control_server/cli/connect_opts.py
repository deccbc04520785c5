"""The SSH connection flags every command that reaches hosts shares, and the
``TransportSettings`` they make (one place, so `run`, `exec` and `image` agree)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from control_server.transport import TRANSPORTS, TransportSettings
from control_server.transport.base import HOST_KEY_POLICIES

F = TypeVar("F", bound=Callable[..., Any])

# No default: a value given here wins over the inventory's ssh args and ssh_config, and
# only a value given does (strict when nobody says otherwise).
host_key_option = click.option(
    "--host-key-checking", type=click.Choice(HOST_KEY_POLICIES), default=None,
    help="strict (the default), accept-new (add unknown hosts; a changed key is always "
    "refused) or off. Wins over the inventory's ssh args and ssh_config.")
known_hosts_option = click.option(
    "--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
    help="known_hosts file, instead of ssh_config's UserKnownHostsFile "
    "(default ~/.ssh/known_hosts).")

CONNECTION_OPTIONS = [
    click.option("-c", "--transport", type=click.Choice(TRANSPORTS),
                 help="Override ansible_connection for every host."),
    host_key_option,
    known_hosts_option,
    click.option("-F", "--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
                 help="ssh config file (default ~/.ssh/config)."),
    click.option("-T", "--connect-timeout", type=float, default=10.0, show_default=True),
    click.option("--handshakes", type=int, default=16, show_default=True,
                 help="Concurrent SSH handshakes (sshd's MaxStartups drops more)."),
    click.option("-b", "--become", is_flag=True, default=None,
                 help="Run on the host through sudo -n."),
]


def transport_settings(kw: dict[str, Any], **more: Any) -> TransportSettings:
    """The settings CONNECTION_OPTIONS' values give (``more``: e.g. keepalive_interval)."""
    return TransportSettings(
        host_key_checking=kw["host_key_checking"], known_hosts=kw["known_hosts"],
        ssh_config=kw["ssh_config"], connect_timeout=kw["connect_timeout"],
        handshake_limit=kw["handshakes"], **more)
