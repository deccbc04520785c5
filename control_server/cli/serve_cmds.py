"""``hostplane serve`` (the HTTP API) and ``hostplane tokens create|list|revoke``.

The web stack and the store load inside the commands: other commands never pay for them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from control_server import api
from control_server.cli.common import db_option, inventory_option, templates_option, warn
from control_server.cli.connect_opts import host_key_option, known_hosts_option
from control_server.errors import InputError
from control_server.runner import RunOptions
from control_server.transport import TransportSettings
from control_server.transport.ssh_options import CLI_OFF_WARNING


@click.command("serve")
@inventory_option
@db_option
@click.option("--listen", default="127.0.0.1:8421", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (plain HTTP: keep it on loopback or behind TLS).")
@templates_option
@click.option("--facts-interval", type=float, default=300.0, show_default=True, metavar="S",
              help="Gather host_facts on every host at start-up and every S seconds "
                   "(0: only at start-up).")
@click.option("--no-facts", is_flag=True, help="Do not gather facts (placement then knows "
              "only what job results tell).")
@click.option("-f", "--forks", default=20, show_default=True, help="Hosts at once, per job.")
@click.option("--timeout", type=float, metavar="S", help="Per-host time limit of a job.")
@click.option("--max-body", type=int, default=1024 * 1024, show_default=True, metavar="BYTES",
              help="Refuse larger request bodies (413).")
@click.option("--drain", type=float, default=10.0, show_default=True, metavar="S",
              help="On SIGTERM/SIGINT, let running jobs end for S seconds; the rest are "
                   "left interrupted (hostplane jobs resume).")
@host_key_option
@known_hosts_option
@click.option("-F", "--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="ssh config file (default ~/.ssh/config).")
@click.option("-T", "--connect-timeout", type=float, default=10.0, show_default=True)
@click.option("--idle-close", type=float, default=300.0, show_default=True, metavar="S",
              help="Close a host's warm SSH connection after S seconds unused (serve keeps "
                   "one per host, shared by every job; 0: close after each job).")
@click.option("--channels-per-host", type=click.IntRange(1), default=8, show_default=True,
              help="Channels at once on a host's connection (sshd's MaxSessions is 10); "
                   "more wait.")
@click.option("--no-watch", is_flag=True, help="Do not listen to the hosts' hypervisor events "
              "(one --watch-domains channel per host).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
def serve_cmd(inventories: tuple[str, ...], db_url: str | None, listen: str,
              templates_dirs: tuple[Path, ...], **kw: Any) -> None:
    """Serve the HTTP API: configuration requests, jobs, events, hosts, instances.

    Requests need a bearer token (hostplane tokens create). The OpenAPI document is at
    /openapi.json; see docs/http-api.md.

    \b
    Example:
      hostplane tokens create ci --role operator --db sqlite:///var/lib/hostplane/db
      hostplane serve -i inventory/prod.ini --db sqlite:///var/lib/hostplane/db \\
          --listen 127.0.0.1:8421 --facts-interval 300
    """
    from control_server.service.context import ServeConfig
    from control_server.service.server import parse_listen, serve
    from control_server.store.rows import default_url

    if not inventories:
        inventories = _default_sources()
    host, port = parse_listen(listen)
    if kw["host_key_checking"] == "off":
        warn([CLI_OFF_WARNING])
    run = api.RunConfig(
        options=RunOptions(forks=kw["forks"], timeout=kw["timeout"]),
        transport=TransportSettings(
            host_key_checking=kw["host_key_checking"], known_hosts=kw["known_hosts"],
            ssh_config=kw["ssh_config"], connect_timeout=kw["connect_timeout"]),
        templates_dirs=tuple(d.resolve() for d in templates_dirs),
    )
    config = ServeConfig(
        inventory_sources=tuple(inventories), db_url=db_url or default_url(), host=host,
        port=port, run=run, facts_interval=kw["facts_interval"] or None,
        gather_facts=not kw["no_facts"], max_body=kw["max_body"], drain=kw["drain"],
        watch=not kw["no_watch"], idle_close=kw["idle_close"],
        channels_per_host=kw["channels_per_host"],
    )
    serve(config, kw["log_level"])


def _default_sources() -> tuple[str, ...]:
    import os

    env = os.environ.get("HOSTPLANE_INVENTORY") or os.environ.get("ANSIBLE_INVENTORY")
    if not env:
        raise InputError("no inventory: give -i SRC (or set HOSTPLANE_INVENTORY)")
    # As common.load_inventory reads it: 'a.ini,b.ini' is two sources, 'h1,h2,' a host list.
    if "," in env and not env.endswith(","):
        return tuple(s for s in env.split(",") if s)
    return (env,)


@click.group("tokens")
def tokens_group() -> None:
    """API tokens of hostplane serve (stored hashed in the job store).

    \b
    Example:
      hostplane tokens create dashboard --role reader
      hostplane tokens list
      hostplane tokens revoke dashboard
    """


def _token_store(db_url: str | None) -> Any:
    from control_server.service.tokens import TokenStore
    from control_server.store.jobstore import JobStore

    return TokenStore(JobStore.open(db_url).engine)


@tokens_group.command("create")
@db_option
@click.option("--role", type=click.Choice(["reader", "operator"]), required=True,
              help="reader: GET only; operator: also requests and cancels.")
@click.argument("name")
def create_cmd(db_url: str | None, role: str, name: str) -> None:
    """Create a token NAME and print it (once: only its hash is kept).

    \b
    Example:
      TOKEN=$(hostplane tokens create ci --role operator)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8421/v1/hosts
    """
    click.echo(_token_store(db_url).create(name, role))


@tokens_group.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
def list_cmd(db_url: str | None, as_json: bool) -> None:
    """List tokens: name, role, created, last used, revoked (never the token).

    \b
    Example:
      hostplane tokens list --json
    """
    found = _token_store(db_url).list_tokens()
    if as_json:
        for info in found:
            click.echo(json.dumps(info.__dict__))
        return
    click.echo(f"{'NAME':<24}  {'ROLE':<8}  {'CREATED':<19}  {'LAST USED':<19}  REVOKED")
    for info in found:
        click.echo(f"{info.name:<24}  {info.role:<8}  {_when(info.created_at):<19}  "
                   f"{_when(info.last_used_at):<19}  {_when(info.revoked_at)}")


@tokens_group.command("revoke")
@db_option
@click.argument("name")
def revoke_cmd(db_url: str | None, name: str) -> None:
    """Revoke the token NAME: it is refused from the next request on.

    \b
    Example:
      hostplane tokens revoke ci
    """
    if not _token_store(db_url).revoke(name):
        raise InputError(f"no active token named {name!r}")
    click.echo(f"revoked {name}")


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


COMMANDS = [serve_cmd, tokens_group]
