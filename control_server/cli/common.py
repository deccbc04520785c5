"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from control_server.errors import InputError
from control_server.inventory import Inventory

F = TypeVar("F", bound=Callable[..., Any])


class HostplaneGroup(click.Group):
    """Lists commands in the order they were added (the tour order), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def inventory_option(func: F) -> F:
    return click.option(
        "-i",
        "--inventory",
        "inventories",
        multiple=True,
        metavar="SRC",
        help="Inventory file, folder or 'h1,h2,' host list (repeatable). "
        "Default: $HOSTPLANE_INVENTORY or $ANSIBLE_INVENTORY.",
    )(func)


def limit_option(func: F) -> F:
    return click.option(
        "-l", "--limit", metavar="PATTERN", help="Further limit the hosts (pattern or @file)."
    )(func)


def templates_option(func: F) -> F:
    return click.option(
        "--templates",
        "templates_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="A folder of templates, searched before the shipped ones (repeatable).",
    )(func)


def extra_vars_option(func: F) -> F:
    return click.option(
        "-e",
        "--extra-vars",
        "extra_vars",
        multiple=True,
        metavar="VARS",
        help="k=v pairs, @file.yml/json, or a JSON/YAML mapping (repeatable; they win).",
    )(func)


def load_inventory(sources: tuple[str, ...]) -> Inventory:
    if not sources:
        env = os.environ.get("HOSTPLANE_INVENTORY") or os.environ.get("ANSIBLE_INVENTORY")
        if not env:
            raise InputError("no inventory: give -i SRC (or set HOSTPLANE_INVENTORY)")
        sources = tuple(s for s in env.split(",") if s) if "," in env and not env.endswith(
            ","
        ) else (env,)
    return Inventory.load(list(sources))


def warn(messages: list[str]) -> None:
    for message in messages:
        click.secho(f"[WARNING]: {message}", fg="yellow", err=True)
