"""``hostplane templates list|show`` and ``hostplane render``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from control_server.cli.common import (
    extra_vars_option,
    inventory_option,
    limit_option,
    load_inventory,
    templates_option,
    warn,
)
from control_server.extra_vars import parse_extra_vars
from control_server.sequence import build_request
from control_server.template_usage import unused_extra_vars
from control_server.templating import TemplateLibrary


@click.group("templates")
def templates() -> None:
    """Command templates: the shipped ones and those in --templates folders.

    \b
    Examples:
      hostplane templates list
      hostplane templates show launch_instance
    """


@templates.command("list")
@templates_option
def list_cmd(templates_dirs: tuple[Path, ...]) -> None:
    """List the templates with their descriptions.

    \b
    Example:
      hostplane templates list --templates ./my-templates
    """
    for info in TemplateLibrary(templates_dirs).list():
        click.echo(f"{info.name:<22} {info.description}")


@templates.command("show")
@templates_option
@click.argument("name")
def show_cmd(templates_dirs: tuple[Path, ...], name: str) -> None:
    """Show a template's params: type, default, required, description.

    \b
    Example:
      hostplane templates show launch_instance
    """
    info = TemplateLibrary(templates_dirs).get(name)
    click.echo(f"{info.name}: {info.description}")
    click.echo(f"  file: {info.path}")
    if not info.params:
        click.echo("  params: none")
    for p in info.params:
        flags = ["required"] if p.required else [f"default={json.dumps(p.default)}"]
        if p.choices:
            flags.append("choices=" + "|".join(map(str, p.choices)))
        if p.pattern:
            flags.append(f"pattern={p.pattern}")
        if p.secret:
            flags.append("secret")
        click.echo(f"  {p.name} ({p.type}, {', '.join(flags)})")
        if p.description:
            click.echo(f"      {p.description}")


@click.command("render")
@inventory_option
@limit_option
@templates_option
@extra_vars_option
@click.option("--check", is_flag=True, help="Render the request in check mode.")
@click.argument("pattern")
@click.argument("template")
def render_cmd(
    inventories: tuple[str, ...],
    limit: str | None,
    templates_dirs: tuple[Path, ...],
    extra_vars: tuple[str, ...],
    check: bool,
    pattern: str,
    template: str,
) -> None:
    """Print, per host, the request JSON the executor will receive. Connects to nothing.

    Secret params are shown as ********.

    \b
    Example:
      hostplane render -i inventory/example.ini kvm01 launch_instance -e name=vm42
    """
    inv = load_inventory(inventories)
    hosts = inv.hosts(pattern, limit)
    warn(inv.warnings)
    evars = parse_extra_vars(list(extra_vars))
    library = TemplateLibrary(templates_dirs)
    unused = unused_extra_vars(library, template, evars) if evars else None
    warn([unused] if unused else [])
    out = {}
    for host in hosts:
        seq = library.render(template, {**host.vars, **evars}, host.name)
        request = build_request(seq, f"render-{host.name}", check=check)
        out[host.name] = seq.redact(request)
    click.echo(json.dumps(out, indent=2))


COMMANDS = [templates, render_cmd]
