"""``hostplane events``: the hosts' hypervisor events (domains started, stopped, crashed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import click

from control_server.cli.common import inventory_option, limit_option, load_inventory, warn
from control_server.cli.connect_opts import host_key_option, known_hosts_option
from control_server.errors import HostplaneError
from control_server.host_events import InstanceView, watch_hosts
from control_server.inventory import connection_target
from control_server.transport import TransportSettings
from control_server.transport.ssh_options import (
    CLI_OFF_WARNING,
    HostKeyPlan,
    host_key_plan,
    host_ssh_options,
    off_warnings,
)


def _host_keys(host: Any, settings: TransportSettings) -> HostKeyPlan | None:
    try:
        target = connection_target(host)
    except HostplaneError:
        return None  # the watch reports the bad value itself
    return host_key_plan(target.address, target.port, target.user,
                         host_ssh_options(host.vars), settings)


def _line(host: str, event: dict[str, Any]) -> str | None:
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or time.time())))
    kind = event.get("event")
    if kind == "domain_event":
        return (f"{stamp} {host} {event.get('domain')} {event.get('kind')}/{event.get('detail')}"
                f" -> {event.get('state')}")
    if kind == "domain_list":
        names = ", ".join(f"{d['name']}={d['state']}" for d in event.get("domains", []))
        return f"{stamp} {host} domains: {names or '(none)'}"
    if kind == "watch_disconnected":
        return f"{stamp} {host} disconnected: {event.get('error')} (retry in {event.get('retry_in')}s)"
    if kind == "error":
        return f"{stamp} {host} error: {event.get('message')}"
    if kind == "watch_connected":
        return f"{stamp} {host} connected"
    return None  # heartbeats


async def _collect(hosts: list[Any], settings: TransportSettings, follow: bool, as_json: bool,
                   timeout: float) -> InstanceView:
    view = InstanceView()
    pending = {h.name for h in hosts}
    done = asyncio.Event()

    def on_event(host: str, event: dict[str, Any]) -> None:
        view.apply(host, event)
        if follow:
            text = json.dumps({"host": host, **event}) if as_json else _line(host, event)
            if text:
                click.echo(text)
        elif event.get("event") == "error":
            click.echo(f"{host}: {event.get('message')}", err=True)
        elif event.get("event") in ("domain_list", "watch_disconnected"):
            if event.get("event") == "watch_disconnected":
                click.echo(f"{host}: {event.get('error')}", err=True)
            pending.discard(host)
            if not pending:
                done.set()

    task = asyncio.ensure_future(watch_hosts(hosts, on_event, settings))
    try:
        if follow:
            await task
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return view


@click.command("events")
@inventory_option
@limit_option
@click.option("-f", "--follow", is_flag=True, help="Keep watching and print every event.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines.")
@host_key_option
@known_hosts_option
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Without --follow: how long to wait for every host's domain list.")
@click.argument("pattern", default="all")
def events_cmd(inventories: tuple[str, ...], limit: str | None, follow: bool, as_json: bool,
               host_key_checking: str | None, known_hosts: Path | None, timeout: float,
               pattern: str) -> None:
    """Show the hosts' domains, or follow their lifecycle events live.

    One executor per host streams libvirt's events over the host's SSH connection; it
    reconnects with backoff and starts every connection with the full domain list.

    \b
    Examples:
      hostplane events -i hosts.ini kvm
      hostplane events -i hosts.ini all --follow --json
    """
    inv = load_inventory(inventories)
    hosts = inv.hosts(pattern, limit)
    warn(inv.warnings)
    settings = TransportSettings(host_key_checking=host_key_checking, known_hosts=known_hosts)
    warn([CLI_OFF_WARNING] if host_key_checking == "off" else [])
    warn(off_warnings((h.name, _host_keys(h, settings)) for h in hosts))
    try:
        view = asyncio.run(_collect(hosts, settings, follow, as_json, timeout))
    except KeyboardInterrupt:
        return
    if follow:
        return
    if as_json:
        click.echo(json.dumps(view.domains, indent=2, sort_keys=True))
        return
    for host in hosts:
        if host.name not in view.domains:
            click.echo(f"{host.name:<20} (no answer)")
        elif not view.domains[host.name]:
            click.echo(f"{host.name:<20} (no domains)")
        for name, dom in sorted(view.domains.get(host.name, {}).items()):
            click.echo(f"{host.name:<20} {name:<24} {dom.get('state', '?'):<10} "
                       f"vcpus={dom.get('vcpus', '?')} memory={dom.get('memory_mib', '?')}MiB")


COMMANDS = [events_cmd]
