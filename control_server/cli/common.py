"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from control_server.errors import InputError

if TYPE_CHECKING:
    from control_server.inventory import Inventory

F = TypeVar("F", bound=Callable[..., Any])


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported (``module:attribute`` of ``package``) the
    first time it is looked up: a command's module loads only when it runs, or when
    ``--help`` lists every command with its help text. Names keep the order given."""

    def __init__(self, package: str, specs: dict[str, str]) -> None:
        self._package = package
        self._specs = dict(specs)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, _, attr = self._specs[name].partition(":")
            command = getattr(importlib.import_module(f"{self._package}.{module}"), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._specs[name]} is not a click command")
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._specs.setdefault(name, "")
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._specs[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


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


ENV_DB = "HOSTPLANE_DB"  # store.records.ENV_DB, without importing the store


def db_option(func: F) -> F:
    return click.option("--db", "db_url", envvar=ENV_DB, metavar="URL",
                        help="Job store URL (default: $HOSTPLANE_DB, else SQLite in "
                             "$XDG_STATE_HOME/hostplane).")(func)


# The flags `run` and `exec` add for recording (see run_cmds.run_options).
RECORD_OPTIONS = [
    db_option,
    click.option("--no-record", is_flag=True, help="Do not record this run as a job."),
]


def load_inventory(sources: tuple[str, ...]) -> Inventory:
    from control_server.inventory import Inventory

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
