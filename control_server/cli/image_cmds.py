"""``hostplane image push|list|remove``: base images on hosts (``control_server.images``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from control_server.cli.common import (
    HostplaneGroup,
    inventory_option,
    limit_option,
    load_inventory,
    warn,
)
from control_server.cli.connect_opts import CONNECTION_OPTIONS, transport_settings

if TYPE_CHECKING:
    from control_server.api import RunConfig
    from control_server.images import HostOutcome

F = TypeVar("F", bound=Callable[..., Any])
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


def _options(func: F) -> F:
    decorators = [
        inventory_option,
        limit_option,
        click.option("-f", "--forks", default=20, show_default=True, help="Hosts at once."),
        click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout instead."),
        click.option("--image-dir", metavar="PATH",
                     help="The hosts' image folder (default /var/lib/hostplane/base)."),
        *CONNECTION_OPTIONS,
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


overlay_option = click.option(
    "--overlay-dir", "overlay_dirs", multiple=True, metavar="PATH",
    help="Folder of instances' disks, checked for overlays on an image (repeatable; "
         "default /var/lib/hostplane/images).")


def _config(kw: dict[str, Any], check: bool = False) -> RunConfig:
    from control_server.api import RunConfig
    from control_server.runner import RunOptions

    return RunConfig(
        options=RunOptions(forks=kw["forks"], check=check),
        transport=transport_settings(kw),
        transport_override=kw["transport"], limit=kw["limit"], become=kw["become"])


def _hosts(kw: dict[str, Any], pattern: str) -> list[Any]:
    inv = load_inventory(kw["inventories"])
    warn(inv.warnings)
    hosts = inv.hosts(pattern, kw["limit"])
    if not hosts:
        warn([f"no hosts matched {pattern!r}"])
    return hosts


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


class _Printer:
    """Reports for people (stderr progress, a line per host) or as JSON Lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._shown: dict[str, int] = {}  # host -> last percent shown

    def __call__(self, event: dict[str, Any]) -> None:
        if event["kind"] == "image_progress":
            percent = event["sent"] * 100 // max(1, event["total"])
            step = 1 if self.as_json else 10
            if percent // step == self._shown.get(event["host"], -1) // step:
                return
            self._shown[event["host"]] = percent
            if not self.as_json:
                click.echo(f"{event['host']}: {percent}% of {_mib(event['total'])}", err=True)
                return
        elif event["kind"] == "image_retry" and not self.as_json:
            click.echo(f"{event['host']}: connection lost, reconnecting to resume "
                       f"(attempt {event['attempt']})", err=True)
            return
        elif event["kind"] == "host_end" and not self.as_json:
            return  # the summary prints them in inventory order
        if self.as_json:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()


def _summary(outcomes: list[HostOutcome], line: Callable[[HostOutcome], str]) -> int:
    from control_server.images import exit_code

    for outcome in outcomes:
        if outcome.status in ("failed", "unreachable"):
            click.secho(f"{outcome.host}: {outcome.status.upper()}: {outcome.message}",
                        fg="red", err=True)
        else:
            click.echo(f"{outcome.host}: {line(outcome)}")
    return exit_code(outcomes)


@click.group("image", cls=HostplaneGroup)
def image_group() -> None:
    """Base images on hosts: push once per content, list, remove.

    \b
    Examples:
      hostplane image push debian-12.qcow2 --name debian-12 -i inventory/example.ini kvm
      hostplane image list -i inventory/example.ini kvm
      hostplane run -i inventory/example.ini kvm launch_instance -e name=vm1 -e image=debian-12
    """


@image_group.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The image's name on the hosts.")
@click.option("--format", "fmt", type=click.Choice(["qcow2", "raw"]),
              help="Expected format (default: read from the file's header).")
@click.option("-C", "--check", is_flag=True, help="Report what would be sent; send nothing.")
@click.argument("pattern")
@_options
def push_cmd(file: Path, name: str, fmt: str | None, check: bool, pattern: str,
             **kw: Any) -> None:
    """Copy an image FILE to every host matching PATTERN, once per content.

    \b
    Example:
      hostplane image push debian-12.qcow2 --name debian-12 -i inventory/example.ini kvm
    """
    import re

    from control_server import images

    if not re.fullmatch(NAME_PATTERN, name):
        raise click.BadParameter("letters, digits, '_', '.', '-' (at most 64)", param_hint="--name")
    hosts = _hosts(kw, pattern)
    image = images.inspect_image(file, name, fmt)
    printer = _Printer(kw["as_json"])
    if not kw["as_json"]:
        click.echo(f"image {name}: {image.format}, {_mib(image.size)}, sha256:{image.digest}",
                   err=True)
    outcomes = asyncio.run(images.push(hosts, _config(kw, check), image, printer,
                                       kw["image_dir"]))

    def line(o: HostOutcome) -> str:
        if o.status != "uploaded":
            return f"{o.status}: {o.message}"
        resumed = f", resumed at {_mib(o.resumed_from)}" if o.resumed_from else ""
        return f"uploaded ({_mib(o.sent)} sent{resumed}), verified, stored as {name}"

    sys.exit(_finish(outcomes, kw, line))


def _finish(outcomes: list[HostOutcome], kw: dict[str, Any],
            line: Callable[[HostOutcome], str]) -> int:
    from control_server.images import exit_code

    return exit_code(outcomes) if kw["as_json"] else _summary(outcomes, line)


@image_group.command("list")
@click.argument("pattern")
@overlay_option
@_options
def list_cmd(pattern: str, overlay_dirs: tuple[str, ...], **kw: Any) -> None:
    """Which hosts matching PATTERN have which images (name, digest, format, size, the
    instances whose disks are overlays on them).

    \b
    Example:
      hostplane image list -i inventory/example.ini 'kvm:&rack1' --json
    """
    from control_server import images

    outcomes = asyncio.run(images.list_images(
        _hosts(kw, pattern), _config(kw), _Printer(kw["as_json"]), kw["image_dir"],
        list(overlay_dirs) or None))
    if kw["as_json"]:
        sys.exit(images.exit_code(outcomes))
    click.echo(f"{'HOST':<20} {'NAME':<24} {'DIGEST':<19} {'FORMAT':<6} {'SIZE':>12}  USED BY")
    for outcome in outcomes:
        if outcome.status in ("failed", "unreachable"):
            click.secho(f"{outcome.host}: {outcome.status.upper()}: {outcome.message}",
                        fg="red", err=True)
        for img in outcome.data.get("images", []):
            click.echo(f"{outcome.host:<20} {img['name'] or '(unnamed)':<24} "
                       f"sha256:{img['digest'][:12]} {img['format']:<6} "
                       f"{_mib(img['size']):>12}  {', '.join(img['used_by']) or '-'}")
    sys.exit(images.exit_code(outcomes))


@image_group.command("remove")
@click.argument("name")
@click.argument("pattern")
@click.option("-C", "--check", is_flag=True, help="Report what would be removed.")
@overlay_option
@_options
def remove_cmd(name: str, pattern: str, check: bool, overlay_dirs: tuple[str, ...],
               **kw: Any) -> None:
    """Remove image NAME from the hosts matching PATTERN (refused while an instance's
    disk is an overlay on it). NAME may be sha256:HEX, for content that no name refers to
    any more (listed as "(unnamed)": its name was pushed again with new content).

    \b
    Example:
      hostplane image remove debian-12 -i inventory/example.ini kvm
    """
    from control_server import images

    outcomes = asyncio.run(images.remove(
        _hosts(kw, pattern), _config(kw, check), name, _Printer(kw["as_json"]),
        kw["image_dir"], list(overlay_dirs) or None))
    sys.exit(_finish(outcomes, kw, lambda o: f"{o.status}: {o.message}"))


COMMANDS = [image_group]
