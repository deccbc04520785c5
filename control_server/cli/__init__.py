"""The ``hostplane`` command line: a thin click shell over the library API (the only click
modules). Every user error is printed as one line naming what is at fault, never a
traceback; exit status 1 for bad input, 2 a host failed, 4 a host unreachable."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from control_server import __version__
from control_server.cli.common import HostplaneGroup, LazyCommands
from control_server.errors import HostplaneError

# Every command, in the tour order, as ``module:attribute`` of control_server.cli: a
# module is imported only when one of its commands runs (or --help lists them all), so
# ``--version`` or an exec that matches nothing never loads SQLAlchemy, rich or FastAPI.
COMMANDS = {
    "inventory": "inventory_cmds:inventory",
    "hosts": "hosts_cmds:hosts_cmd",
    "templates": "template_cmds:templates",
    "render": "template_cmds:render_cmd",
    "run": "run_cmds:run_cmd",
    "exec": "run_cmds:exec_cmd",
    "results": "run_cmds:results",
    "jobs": "jobs_cmds:jobs_group",
    "events": "events_cmds:events_cmd",
    "serve": "serve_cmds:serve_cmd",
    "tokens": "serve_cmds:tokens_group",
    "image": "image_cmds:image_group",
    "console": "console_cmds:console_cmd",
    "lab": "lab_cmds:lab",
}


@click.group(cls=HostplaneGroup, commands=LazyCommands("control_server.cli", COMMANDS),
             context_settings={"help_option_names": ["-h", "--help"]})
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
            import traceback

            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set HOSTPLANE_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(70)
