"""``hostplane run``, ``hostplane exec`` and ``hostplane results fetch``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from control_server.cli.common import (
    RECORD_OPTIONS,
    extra_vars_option,
    inventory_option,
    limit_option,
    load_inventory,
    templates_option,
    warn,
)
from control_server.cli.connect_opts import (
    CONNECTION_OPTIONS,
    host_key_option,
    known_hosts_option,
    transport_settings,
)
from control_server.transport import TransportSettings

# The run itself (runner, console, store, templates) loads once hosts matched: an exec
# that matches nothing, or a --help, stays a click start-up.
if TYPE_CHECKING:
    from control_server import api
    from control_server.events import Sink
    from control_server.runner import HostPlan, RunResult
    from control_server.store.records import JobRecord
    from control_server.store.sink import RunStore

F = TypeVar("F", bound=Callable[..., Any])

def run_options(func: F) -> F:
    """The flags `run` and `exec` share (Ansible's where Ansible has one)."""
    decorators = [
        inventory_option,
        limit_option,
        extra_vars_option,
        click.option("-f", "--forks", default=20, show_default=True, help="Hosts at once."),
        click.option("--serial", metavar="N|N%", help="Run hosts in batches of N (or N%)."),
        click.option("--max-fail-percentage", type=float, metavar="P",
                     help="Stop after a batch where more than P% of hosts failed."),
        click.option("-C", "--check", is_flag=True, help="Report what would change; change nothing."),
        click.option("-D", "--diff", is_flag=True, help="Show file differences."),
        click.option("--timeout", type=float, metavar="S", help="Per-host time limit in seconds."),
        click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout instead."),
        click.option("--retry-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write failed and unreachable hosts here (for --limit @FILE)."),
        *CONNECTION_OPTIONS,
        click.option("-v", "--verbose", is_flag=True, help="Print every step as it ends."),
        click.option("--on-disconnect", type=click.Choice(["detach", "abort"]),
                     default="detach", show_default=True,
                     help="A lost connection: the sequence goes on and is reattached "
                          "(detach), or is cancelled on the host (abort)."),
        click.option("--reattach-timeout", type=float, default=120.0, show_default=True,
                     metavar="S", help="How long to try to reattach after a lost connection."),
        click.option("--keepalive", type=float, default=15.0, show_default=True, metavar="S",
                     help="SSH keepalive interval; 3 unanswered = connection lost."),
        *RECORD_OPTIONS,  # --db, --no-record
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def _config(kw: dict[str, Any], templates_dirs: tuple[Path, ...] = ()) -> api.RunConfig:
    from control_server import api
    from control_server.runner import RunOptions

    return api.RunConfig(
        options=RunOptions(
            forks=kw["forks"],
            serial=kw["serial"],
            max_fail_percentage=kw["max_fail_percentage"],
            check=kw["check"],
            diff=kw["diff"],
            timeout=kw["timeout"],
            on_disconnect=kw["on_disconnect"],
            reattach_timeout=kw["reattach_timeout"],
        ),
        transport=transport_settings(kw, keepalive_interval=kw["keepalive"]),
        transport_override=kw["transport"],
        templates_dirs=templates_dirs,
        limit=kw["limit"],
        become=kw["become"],
    )


def _sinks(as_json: bool, verbose: bool, show_output: bool) -> list[Sink]:
    if as_json:
        from control_server.jsonl import JsonLinesSink

        return [JsonLinesSink(sys.stdout)]
    from control_server.console import ConsoleSink  # rich: only for the console

    return [ConsoleSink(verbose=verbose, show_output=show_output)]


def _finish(result: RunResult, retry_file: Path | None) -> None:
    if retry_file is not None:
        bad = result.failed + result.unreachable
        retry_file.write_text("".join(f"{h}\n" for h in bad), encoding="utf-8")
    sys.exit(result.exit_code)


def _execute(pattern: str, make_task: Callable[[], api.Task], kw: dict[str, Any],
             templates_dirs: tuple[Path, ...] = ()) -> None:
    inv = load_inventory(kw["inventories"])
    evars: dict[str, Any] = {}
    if kw["extra_vars"]:  # (PyYAML loads only for them)
        from control_server.extra_vars import parse_extra_vars

        evars = parse_extra_vars(list(kw["extra_vars"]))
    if kw["host_key_checking"] == "off":
        from control_server.transport.ssh_options import CLI_OFF_WARNING

        warn([CLI_OFF_WARNING])
    hosts = inv.hosts(pattern, kw["limit"])
    warn(inv.warnings)
    if not hosts:
        warn(["No hosts matched, nothing to do"])  # as Ansible: exit 0, no job
        sys.exit(0)
    import atexit
    import gc

    # The last exit hook (hooks run last registered first): the interpreter's teardown
    # would run the cycle collector over every loaded module's objects (~0.1 s of CPU
    # with asyncssh and SQLAlchemy loaded) in a process about to be gone.
    atexit.register(gc.freeze)
    from control_server import api
    from control_server.template_usage import unused_extra_vars
    from control_server.templating import TemplateLibrary
    from control_server.transport.ssh_options import off_warnings

    config = _config(kw, templates_dirs)
    task = make_task()
    if isinstance(task, api.TemplateTask) and evars:
        unused = unused_extra_vars(TemplateLibrary(config.templates_dirs), task.name, evars)
        warn([unused] if unused else [])
    plans = api.plan_hosts(hosts, task, evars, config)
    warn(off_warnings((p.host, getattr(p.transport, "host_keys", None)) for p in plans))
    sinks = _sinks(kw["as_json"], kw["verbose"], isinstance(task, api.AdhocTask))
    if not kw.get("no_record"):  # the run as a job
        job, plans = _recorder(kw, pattern, task, evars, config, plans)
        # The job first: at the run's end it commits everything (host_end included) before
        # the console prints the recap, so what the recap reports is on disk.
        sinks = [job, *sinks]
    import asyncio

    result = asyncio.run(api.execute_plans(plans, config, sinks, api.describe(task)))
    _finish(result, kw["retry_file"])


def _recorder(kw: dict[str, Any], pattern: str, task: api.Task, evars: dict[str, Any],
              config: api.RunConfig, plans: list[HostPlan]) -> tuple[Sink, list[HostPlan]]:
    """The sink recording this run as a job, and the plans to run (each host's request
    waits for the job). The store opens, and the job is created, in the sink's writer
    thread while the connections open: an up-to-date SQLite store through ``sqlite3``
    alone (``store.sqlite_writer``), any other through ``JobStore``, whose SQLAlchemy
    import then mostly fills time the run spends waiting on the network."""
    from control_server import jobs

    cwd = Path.cwd()

    def open_store() -> RunStore:  # (the writer thread)
        from control_server.cli.jobs_cmds import open_run_store

        return open_run_store(kw.get("db_url"))

    def request() -> jobs.JobRequest:
        from control_server.cli.jobs_cmds import _sources

        return jobs.JobRequest(pattern, task, evars, config, _sources(kw), cwd)

    def announce(job: JobRecord) -> None:
        from control_server.cli.jobs_cmds import _announce

        _announce(job)

    def not_recorded(why: str) -> None:  # the database is down, read-only, full: warned
        warn([f"this run is not recorded: {why}"])

    return jobs.record_run_deferred(open_store, request, plans, announce, not_recorded)


@click.command("run")
@run_options
@templates_option
@click.argument("pattern")
@click.argument("template")
def run_cmd(pattern: str, template: str, templates_dirs: tuple[Path, ...], **kw: Any) -> None:
    """Run a command template on every host PATTERN matches.

    Exit status: 0 all ok, 2 a host failed, 4 a host unreachable, 1 bad input.

    \b
    Examples:
      hostplane run -i inventory/example.ini 'kvm:&rack1' launch_instance -e name=vm42
      hostplane run -i hosts.ini all host_facts --json > facts.jsonl
      hostplane run -i hosts.ini kvm stop_instance -e name=vm42 --serial 2 --check
    """
    def task() -> api.Task:
        from control_server import api

        return api.TemplateTask(template)

    _execute(pattern, task, kw, templates_dirs)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@run_options
@click.option("--shell", is_flag=True, help="Run CMD through /bin/sh -c (one string).")
@click.option("--step-timeout", type=float, help="Kill the command after S seconds.")
@click.argument("pattern")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(pattern: str, command: tuple[str, ...], shell: bool,
             step_timeout: float | None, **kw: Any) -> None:
    """Run one command on every host PATTERN matches (like `ansible PATTERN -a`).

    The command runs as argv, with no shell, unless --shell is given.

    \b
    Examples:
      hostplane exec -i inventory/example.ini all -- uptime
      hostplane exec -i hosts.ini kvm --shell -- 'virsh list --all | tail -n +3'
    """
    argv = (" ".join(command),) if shell else command

    def task() -> api.Task:
        from control_server import api

        return api.AdhocTask(argv, shell=shell, timeout=step_timeout)

    _execute(pattern, task, kw)


@click.group("results")
def results() -> None:
    """Results kept on hosts (the executor's journal).

    \b
    Example:
      hostplane results fetch -i hosts.ini kvm01 3f2a...e1
    """


@results.command("fetch")
@inventory_option
@host_key_option
@known_hosts_option
@click.option("-F", "--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="ssh config file (default ~/.ssh/config).")
@click.option("--redact", "secrets", multiple=True, metavar="VALUE|@FILE",
              help="Mask this secret value (or each line of FILE) in the output (repeatable).")
@click.argument("host")
@click.argument("request_id")
def fetch_cmd(inventories: tuple[str, ...], host_key_checking: str | None,
              known_hosts: Path | None, ssh_config: Path | None,
              secrets: tuple[str, ...], host: str, request_id: str) -> None:
    """Print the journaled events of REQUEST_ID on HOST (JSON Lines).

    The executor masks a run's secret params (as ********) before it journals anything. A
    journal written by an older executor may still hold them, and this command does not
    know a run's secret values (the job store never keeps them): give them with --redact.

    \b
    Example:
      hostplane results fetch -i hosts.ini kvm01 0c9d4e...
      hostplane results fetch -i hosts.ini kvm01 0c9d4e... --redact @secrets.txt
    """
    from control_server import api
    from control_server.sequence import forms_of, redact
    from control_server.transport.ssh_options import CLI_OFF_WARNING

    inv = load_inventory(inventories)
    if host_key_checking == "off":
        warn([CLI_OFF_WARNING])
    settings = TransportSettings(host_key_checking=host_key_checking, known_hosts=known_hosts,
                                 ssh_config=ssh_config)
    hidden = forms_of(_redact_values(secrets))
    import asyncio
    import json

    events = redact(asyncio.run(api.fetch_journal(inv.host(host), request_id, settings)), hidden)
    for event in events:
        click.echo(json.dumps(event))


def _redact_values(given: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for item in given:
        if not item.startswith("@"):
            values.append(item)
            continue
        try:
            values += Path(item[1:]).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{item}: {exc}", param_hint="--redact") from None
    return [value for value in values if value]


COMMANDS = [run_cmd, exec_cmd, results]
