"""``hostplane hosts``: each host's capacity (total, reserved, claimed, free) from the
facts and capacity claims in the store, the same figures whichever server gathered or
claimed them."""

from __future__ import annotations

import json
from datetime import datetime

import click

from control_server.capacity_model import Claimed, HostCapacity, host_capacity
from control_server.cli.common import (
    db_option,
    inventory_option,
    limit_option,
    load_inventory,
    warn,
)

UNITS = {"memory_mib": "MiB", "vcpus": "", "disk_gib": "GiB"}
NAMES = {"memory_mib": "memory", "vcpus": "vcpus", "disk_gib": "disk"}


def capacities(inventories: tuple[str, ...], pattern: str, limit: str | None,
               db_url: str | None) -> list[HostCapacity]:
    from control_server.store import capacity
    from control_server.store.facts import HostFactsTable
    from control_server.store.jobstore import JobStore

    inv = load_inventory(inventories)
    hosts = inv.hosts(pattern, limit)
    warn(inv.warnings)
    with JobStore.open(db_url) as store:
        facts = {f.host: f for f in HostFactsTable(store.engine).all()}
        held = capacity.usage(store.engine, [h.name for h in hosts])
    found = []
    for host in hosts:
        known, use = facts.get(host.name), held[host.name]
        found.append(host_capacity(
            host.name, host.vars, known.facts if known else None,
            Claimed(use.memory_mib, use.vcpus, use.disk_gib),
            known.gathered_at if known else None))
    return found


def _figure(value: int | None) -> str:
    return "-" if value is None else str(value)


def _lines(cap: HostCapacity) -> list[str]:
    when = (datetime.fromtimestamp(cap.facts_at).strftime("%Y-%m-%d %H:%M:%S")
            if cap.facts_at else "-")
    lines = []
    for i, (name, res) in enumerate(cap.resources().items()):
        head = f"{cap.host:<20}" if i == 0 else " " * 20
        lines.append(
            f"{head}  {NAMES[name]:<6} {UNITS[name]:<3}  {_figure(res.total):>8}  "
            f"{res.ratio:>5g}  {res.reserved:>8}  {_figure(res.capacity):>8}  "
            f"{res.claimed:>8}  {_figure(res.free):>8}" + (f"  {when}" if i == 0 else ""))
    if cap.problem:
        lines.append(" " * 22 + cap.problem)
    return lines


@click.command("hosts")
@inventory_option
@limit_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host.")
@click.argument("pattern", default="all")
def hosts_cmd(inventories: tuple[str, ...], limit: str | None, db_url: str | None,
              as_json: bool, pattern: str) -> None:
    """Show each host's capacity: total, ratio, reserved, claimed and free.

    Totals are the host's last facts in the store; capacity = (total - reserved) * ratio
    (cpu/ram/disk_allocation_ratio, reserved_memory_mib, reserved_disk_gib vars);
    free = capacity - held claims.

    \b
    Examples:
      hostplane hosts -i inventory/example.ini
      hostplane hosts -i inventory/example.ini 'kvm:&rack1' --json
    """
    found = capacities(inventories, pattern, limit, db_url)
    if as_json:
        for cap in found:
            click.echo(json.dumps(cap.as_dict()))
        return
    click.echo(f"{'HOST':<20}  {'RESOURCE':<10}  {'TOTAL':>8}  {'RATIO':>5}  "
               f"{'RESERVED':>8}  {'CAPACITY':>8}  {'CLAIMED':>8}  {'FREE':>8}  FACTS AT")
    for cap in found:
        for line in _lines(cap):
            click.echo(line)


COMMANDS = [hosts_cmd]
