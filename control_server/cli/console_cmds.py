"""``hostplane console``: an instance's serial console (``control_server.serial_console``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from control_server.cli.common import inventory_option, load_inventory, warn
from control_server.cli.connect_opts import host_key_option, known_hosts_option
from control_server.transport import TRANSPORTS, TransportSettings

if TYPE_CHECKING:
    from control_server.inventory import Host
    from control_server.transport import Transport


@click.command("console")
@inventory_option
@click.option("--tail", "tail_lines", type=click.IntRange(min=1), metavar="N",
              help="Print the last N lines of the serial log and exit (no attaching).")
@click.option("--uri", default="qemu:///system", show_default=True,
              help="The host's libvirt URI.")
@click.option("-b", "--become", is_flag=True, default=None,
              help="Run virsh on the host through sudo -n (the logs are root's).")
@click.option("-c", "--transport", type=click.Choice(TRANSPORTS),
              help="Override ansible_connection (attaching needs ssh).")
@host_key_option
@known_hosts_option
@click.option("-F", "--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="ssh config file (default ~/.ssh/config).")
@click.option("-T", "--connect-timeout", type=float, default=10.0, show_default=True)
@click.argument("host")
@click.argument("instance")
def console_cmd(**kw: Any) -> None:
    """Attach to INSTANCE's serial console on HOST, over the host's SSH connection.

    \b
    Leave with the escape character ^] (Ctrl+], as virsh console); every other key,
    Ctrl-C included, goes to the guest. The terminal is in raw mode while attached and
    the window size follows yours. The serial output still goes to the instance's log
    (what `wait` reads); --tail N prints its last N lines without attaching.

    \b
    Examples:
      hostplane console -b -i inventory/lab.ini lab-1 vm1
      hostplane console -b --tail 20 -i inventory/lab.ini lab-1 vm1

    \b
    Exit status: 0 left with the escape (or the console ended cleanly), 1 bad input
    (unknown host), 2 the instance is not defined or not running, 4 host unreachable.
    """
    inv = load_inventory(kw["inventories"])
    warn(inv.warnings)
    host = inv.host(kw["host"])
    sys.exit(asyncio.run(_console(host, kw)))


def _transport(host: Host, kw: dict[str, Any]) -> tuple[Transport, bool]:
    from control_server.inventory import connection_target
    from control_server.transport import HandshakeLimiter, open_transport

    settings = TransportSettings(
        host_key_checking=kw["host_key_checking"], known_hosts=kw["known_hosts"],
        ssh_config=kw["ssh_config"], connect_timeout=kw["connect_timeout"])
    target = connection_target(host)
    limiter = HandshakeLimiter(settings.handshake_limit, settings.handshake_retries)
    become = target.become if kw["become"] is None else kw["become"]
    return open_transport(target, host.vars, settings, limiter, kw["transport"]), become


async def _console(host: Host, kw: dict[str, Any]) -> int:
    from control_server import serial_console as sc
    from control_server.delivery import become_command

    transport, become = _transport(host, kw)

    def wrap(command: str) -> str:
        return become_command(command, become, transport.target.become_user)

    await transport.connect()
    try:
        if kw["tail_lines"] is not None:
            text = await sc.tail(transport, wrap, kw["uri"], kw["instance"], kw["tail_lines"])
            sys.stdout.write(text)
            return 0
        fd_in, fd_out = 0, 1  # the terminal itself, below Python's (maybe replaced) streams
        term = await sc.open_console(transport, wrap, kw["uri"], kw["instance"],
                                     os.environ.get("TERM") or "xterm", sc.window_size(fd_out))
        click.echo(f"Connected to {kw['instance']} on {host.name} "
                   "(escape character is ^])", err=True)
        with sc.raw_mode(fd_in):
            session = await sc.attach(term, fd_in, fd_out)
        click.echo("", err=True)
    finally:
        await transport.close()
    if session.reason in ("escape", "eof") or session.exit_status == 0:
        return 0
    if session.exit_status is None:
        click.echo(f"error: {host.name}: connection lost", err=True)
        return 4
    click.echo(f"error: host {host.name}: virsh console for {kw['instance']} ended with "
               f"exit status {session.exit_status}", err=True)
    return 2


COMMANDS = [console_cmd]
