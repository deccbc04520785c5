"""``hostplane lab up|status|down``: real SSH hosts in Docker containers."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("lab")
def lab() -> None:
    """A lab of real hosts (Docker containers with sshd, python3, sudo; optionally libvirt).

    \b
    Examples:
      hostplane lab up -n 3
      hostplane run -i ~/.local/state/hostplane/lab/hostplane-lab/hosts.ini lab host_facts
      hostplane lab down
    """


@lab.command("up")
@click.option("-n", "--hosts", "count", default=3, show_default=True, help="How many hosts.")
@click.option("--name", default="hostplane-lab", show_default=True)
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where keys, known_hosts and the inventory go.")
@click.option("--libvirt", is_flag=True, help="Hosts with libvirtd + QEMU that boot real VMs.")
def up_cmd(count: int, name: str, folder: Path | None, libvirt: bool) -> None:
    """Start the lab and write its inventory; each phase (images, containers, sshd) is
    reported on stderr with the seconds since the start.

    \b
    Example:
      hostplane lab up -n 2 --libvirt
    """
    from control_server import lab as labmod
    from control_server.lab_images import stderr_progress

    result = labmod.lab_up(count, name=name, folder=folder, libvirt=libvirt,
                           progress=stderr_progress())
    for host in result.hosts:
        click.echo(f"{host.name}  {host.address}")
    click.echo(f"inventory: {result.inventory}")


@lab.command("status")
@click.option("--name", default="hostplane-lab", show_default=True)
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path))
def status_cmd(name: str, folder: Path | None) -> None:
    """Show the lab's hosts and inventory.

    \b
    Example:
      hostplane lab status
    """
    from control_server import lab as labmod

    result = labmod.lab_status(name=name, folder=folder)
    if result is None:
        click.echo(f"lab {name}: not running")
        return
    for host in result.hosts:
        click.echo(f"{host.name}  {host.address}  {host.container_id[:12]}")
    click.echo(f"inventory: {result.inventory}")


@lab.command("down")
@click.option("--name", default="hostplane-lab", show_default=True)
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path))
def down_cmd(name: str, folder: Path | None) -> None:
    """Remove the lab's containers and network.

    \b
    Example:
      hostplane lab down
    """
    from control_server import lab as labmod

    labmod.lab_down(name=name, folder=folder)
    click.echo(f"lab {name}: down")


COMMANDS = [lab]
