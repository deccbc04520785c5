"""``hostplane inventory list|hosts|graph``: read inventories exactly as Ansible does."""

from __future__ import annotations

import json

import click

from control_server.cli.common import inventory_option, limit_option, load_inventory, warn


@click.group("inventory")
def inventory() -> None:
    """Read Ansible inventories (INI, YAML, folders, host lists).

    \b
    Examples:
      hostplane inventory list -i inventory/example.ini
      hostplane inventory hosts -i inventory/example.ini 'kvm:&rack1:!kvm03'
      hostplane inventory graph -i inventory/example.yml
    """


@inventory.command("list")
@inventory_option
def list_cmd(inventories: tuple[str, ...]) -> None:
    """Print the inventory as JSON, as `ansible-inventory --list` does.

    \b
    Example:
      hostplane inventory list -i inventory/example.ini -i inventory/example.yml
    """
    inv = load_inventory(inventories)
    data = inv.to_ansible_list()
    warn(inv.warnings)
    click.echo(json.dumps(data, indent=4, sort_keys=True, default=str))


@inventory.command("hosts")
@inventory_option
@limit_option
@click.argument("pattern", default="all")
def hosts_cmd(inventories: tuple[str, ...], limit: str | None, pattern: str) -> None:
    """Print the hosts PATTERN matches, one per line, in Ansible's order.

    \b
    Example:
      hostplane inventory hosts -i inventory/example.ini 'rack*:!kvm02' -l @retry.txt
    """
    inv = load_inventory(inventories)
    matched = inv.hosts(pattern, limit)
    warn(inv.warnings)
    for host in matched:
        click.echo(host.name)


@inventory.command("graph")
@inventory_option
@click.argument("group", default="all")
def graph_cmd(inventories: tuple[str, ...], group: str) -> None:
    """Draw the group tree, as `ansible-inventory --graph` does.

    \b
    Example:
      hostplane inventory graph -i inventory/example.ini kvm
    """
    inv = load_inventory(inventories)
    text = inv.graph(group)
    warn(inv.warnings)
    click.echo(text)


COMMANDS = [inventory]
