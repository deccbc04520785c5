"""The ``hostplane`` command line: a thin click shell over the library API (the only click
modules). Every user error is printed as one line naming what is at fault, never a
traceback; exit status 1 for bad input, 2 a host failed, 4 a host unreachable."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from control_server import __version__
from control_server.cli.common import HostplaneGroup
from control_server.errors import HostplaneError


@click.group(cls=HostplaneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hostplane")
def cli() -> None:
    """Configure fleets of virtualization hosts over SSH.

    \b
    Examples:
      hostplane inventory hosts -i inventory/example.ini 'kvm:&rack1'
      hostplane run -i inventory/example.ini kvm launch_instance -e name=vm42
      hostplane exec -i inventory/example.ini all -- uptime
      hostplane lab up -n 3
    """


def _register() -> None:
    from control_server.cli import (
        events_cmds,
        inventory_cmds,
        jobs_cmds,
        lab_cmds,
        run_cmds,
        serve_cmds,
        template_cmds,
    )

    modules = (inventory_cmds, template_cmds, run_cmds, jobs_cmds, events_cmds, serve_cmds,
               lab_cmds)
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="hostplane", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except HostplaneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # last resort: one line, the traceback only on request
        if os.environ.get("HOSTPLANE_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set HOSTPLANE_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(70)
