"""``hostplane jobs list|show|events|resume|cancel``, and the job recording of ``run``/``exec``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from control_server import api
from control_server.cli.common import db_option, extra_vars_option, warn
from control_server.errors import InputError
from control_server.events import Sink
from control_server.runner import HostPlan
from control_server.store.records import (
    FINAL_STATES,
    INTERRUPTED,
    JOB_STATES,
    EventRecord,
    JobRecord,
)

if TYPE_CHECKING:  # SQLAlchemy loads only when a command opens the store
    from control_server.store.jobstore import JobStore
    from control_server.store.sink import RunStore

F = TypeVar("F", bound=Callable[..., Any])
FOLLOW_POLL = 0.5


def open_store(db_url: str | None) -> JobStore:
    from control_server.store.jobstore import JobStore

    store = JobStore.open(db_url)
    store.mark_interrupted_on_startup()
    return store


def open_run_store(db_url: str | None) -> RunStore:
    """The store a run records into: without SQLAlchemy when it is an up-to-date SQLite
    file (``store.sqlite_writer``), else ``open_store``'s ``JobStore``."""
    from control_server.store.sqlite_writer import open_writer

    store = open_writer(db_url)
    store.mark_interrupted_on_startup()
    return store


def _sources(kw: dict[str, Any]) -> tuple[str, ...]:
    """The inventory sources as ``load_inventory`` read them (resume reads them again)."""
    if kw.get("inventories"):
        return tuple(kw["inventories"])
    env = os.environ.get("HOSTPLANE_INVENTORY") or os.environ.get("ANSIBLE_INVENTORY") or ""
    if "," in env and not env.endswith(","):
        return tuple(s for s in env.split(",") if s)
    return (env,) if env else ()


def recorder(kw: dict[str, Any], pattern: str, task: api.Task, extra_vars: dict[str, Any],
             config: api.RunConfig, plans: list[HostPlan]) -> Sink | None:
    """The sink recording this CLI run as a job (None with --no-record). A store that cannot
    be opened is a warning, never a failed run."""
    if kw.get("no_record"):
        return None
    from control_server import jobs
    from control_server.store.jobspec import JobRequest

    request = JobRequest(pattern, task, extra_vars, config, _sources(kw), Path.cwd())
    try:
        store = open_run_store(kw.get("db_url"))
        return jobs.record_run(store, request, plans, _announce)
    except Exception as exc:  # the database is down, read-only, full: the run goes on
        warn([f"this run is not recorded: job store: {type(exc).__name__}: {exc}"])
        return None


def _announce(job: JobRecord) -> None:
    click.echo(f"job {job.id} {job.state} (hostplane jobs show {job.id})", err=True)


@click.group("jobs")
def jobs_group() -> None:
    """Recorded runs: list, show, follow events, resume an interrupted one.

    \b
    Examples:
      hostplane jobs list --state running --state interrupted
      hostplane jobs show 12
      hostplane jobs events 12 --follow
      hostplane jobs resume 12
    """


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _took(job: JobRecord) -> str:
    if job.started_at is None:
        return "-"
    end = job.finished_at or (time.time() if job.state not in FINAL_STATES else job.started_at)
    return f"{end - job.started_at:.1f}s"


@jobs_group.command("list")
@db_option
@click.option("--state", "states", multiple=True, type=click.Choice(JOB_STATES),
              help="Only jobs in this state (repeatable).")
@click.option("-n", "--limit", default=50, show_default=True, help="At most this many jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
def list_cmd(db_url: str | None, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List jobs, newest first.

    \b
    Example:
      hostplane jobs list --state failed -n 10
    """
    with open_store(db_url) as store:
        found = store.list_jobs(list(states) or None, limit=limit)
    if as_json:
        for job in found:
            click.echo(json.dumps(_job_dict(job), default=str))
        return
    click.echo(f"{'ID':>6}  {'STATE':<11}  {'CREATED':<19}  {'TOOK':>8}  {'WHO':<10}  "
               "PATTERN  WHAT")
    for job in found:
        click.echo(f"{job.id:>6}  {job.state:<11}  {_when(job.created_at):<19}  "
                   f"{_took(job):>8}  {job.who[:10]:<10}  {job.pattern}  {job.what}")


def _job_dict(job: JobRecord) -> dict[str, Any]:
    data = {k: getattr(job, k) for k in (
        "id", "state", "kind", "what", "pattern", "limit", "check", "vars", "who",
        "created_at", "started_at", "finished_at", "exit_code", "error", "stopped_early")}
    if job.hosts:
        data["hosts"] = [{"host": h.host, "state": h.state, "request_id": h.request_id,
                          "attempts": h.attempts, "result": h.result} for h in job.hosts]
    return data


def _get(store: JobStore, job_id: int) -> JobRecord:
    job = store.get_job(job_id)
    if job is None:
        raise InputError(f"no job {job_id} in {store.url}")
    return job


@jobs_group.command("show")
@db_option
@click.option("--json", "as_json", is_flag=True, help="The job and its hosts as JSON.")
@click.argument("job_id", type=int)
def show_cmd(db_url: str | None, as_json: bool, job_id: int) -> None:
    """Show a job: what ran, where, by whom, and the same recap as the run printed.

    \b
    Example:
      hostplane jobs show 12
    """
    from control_server import jobs

    with open_store(db_url) as store:
        job = _get(store, job_id)
    if as_json:
        click.echo(json.dumps(_job_dict(job), default=str, indent=2))
        return
    limit = f" --limit {job.limit}" if job.limit else ""
    check = " (check mode)" if job.check else ""
    click.echo(f"job {job.id}: {job.state}{check}")
    click.echo(f"  what:    {job.what} on {job.pattern}{limit}")
    if job.vars:
        click.echo(f"  vars:    {json.dumps(job.vars, default=str)}")
    click.echo(f"  who:     {job.who}")
    click.echo(f"  created: {_when(job.created_at)}  started: {_when(job.started_at)}  "
               f"finished: {_when(job.finished_at)}  ({_took(job)})")
    if job.error:
        click.echo(f"  why:     {job.error}")
    from control_server.console import ConsoleSink  # rich loads only where it prints

    finished = jobs.run_finished(job)
    ConsoleSink(live=False).emit(finished)
    for host in finished.hosts:  # the recap details only failed and unreachable hosts
        if host.status in ("running", "pending", "cancelled"):
            click.echo(f"{host.status.upper()} {host.host}: {host.error}")


def _describe(event: EventRecord) -> str:
    data = event.payload
    if event.kind == "executor":
        ev = data.get("event") or {}
        name = ev.get("event")
        extra = ""
        if name in ("step_start", "step_end"):
            num = ev.get("index", 0) + 1 if isinstance(ev.get("index"), int) else "?"
            extra = f" {num}: {ev.get('name')}"
            if name == "step_end":
                extra += f" -> {ev.get('status')} ({ev.get('duration', 0):.2f}s)"
        elif name == "done":
            extra = f" {ev.get('status')} exit={ev.get('exit')}"
            extra += " (interrupted)" if ev.get("interrupted") else ""
        elif name == "error":
            extra = f" {ev.get('code')}: {ev.get('message')}"
        return f"{name}{extra}"
    if event.kind == "host_end":
        return f"host_end {data.get('status')}" + (f": {data['error']}" if data.get("error")
                                                    else "")
    if event.kind == "job_state":
        return f"job {data.get('state')}" + (f": {data['error']}" if data.get("error") else "")
    if event.kind == "run_end":
        return f"run_end exit={data.get('exit_code')}"
    if event.kind == "run_start":
        return f"run_start {data.get('what')} on {len(data.get('hosts') or ())} host(s)"
    rest = {k: v for k, v in data.items() if k not in ("host", "kind", "time")}
    return f"{event.kind} {json.dumps(rest, default=str)}" if rest else event.kind


def _print_event(event: EventRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"seq": event.seq, **event.payload, "kind": event.kind,
                               "time": event.time}, default=str))
        return
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    stamp += f".{int(event.time * 1000) % 1000:03d}"
    click.echo(f"{event.seq:>6} {stamp} {event.host or '-':<16} {_describe(event)}")


@jobs_group.command("events")
@db_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing events until the job ends.")
@click.option("--after", "after_seq", type=int, default=0, metavar="SEQ",
              help="Only events after this sequence number.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, with each event's seq.")
@click.argument("job_id", type=int)
def events_cmd(db_url: str | None, follow: bool, after_seq: int, as_json: bool,
               job_id: int) -> None:
    """Print a job's events in order (--follow: as they are recorded).

    \b
    Examples:
      hostplane jobs events 12
      hostplane jobs events 12 --follow --json | jq .
    """
    with open_store(db_url) as store:
        _get(store, job_id)
        seq = after_seq
        while True:
            # Read the state before the events: a job seen ended has all its events in.
            job = _get(store, job_id) if follow else None
            for event in store.events(job_id, after_seq=seq):
                _print_event(event, as_json)
                seq = event.seq
            if job is None or job.state in FINAL_STATES or job.state == INTERRUPTED:
                return
            sys.stdout.flush()
            time.sleep(FOLLOW_POLL)
            if store.mark_interrupted_on_startup():
                continue  # its owner died while we followed: print the last events


@jobs_group.command("resume")
@db_option
@extra_vars_option
@click.option("--journal-wait", type=float, default=10.0, show_default=True, metavar="S",
              help="How long to wait for a sequence still running on a host to end.")
@click.option("--force", is_flag=True,
              help="Run again even hosts whose sequence has not ended on the host.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout instead.")
@click.option("-v", "--verbose", is_flag=True, help="Print every step as it ends.")
@click.argument("job_id", type=int)
def resume_cmd(db_url: str | None, extra_vars: tuple[str, ...], journal_wait: float,
               force: bool, as_json: bool, verbose: bool, job_id: int) -> None:
    """Finish an interrupted job: read back the journals of the sequences whose connection
    was lost, then run the hosts that had not finished. Secret vars were not stored: give
    them again with -e.

    Exit status as for `run`: 0 all ok, 2 a host failed, 4 a host unreachable.

    \b
    Examples:
      hostplane jobs resume 12
      hostplane jobs resume 12 -e admin_password=@secrets.yml
    """
    from control_server.console import ConsoleSink
    from control_server.extra_vars import parse_extra_vars
    from control_server.jsonl import JsonLinesSink
    from control_server.store.resume import resume_job

    evars = parse_extra_vars(list(extra_vars))
    sink: Sink = JsonLinesSink(sys.stdout) if as_json else ConsoleSink(verbose=verbose)
    with open_store(db_url) as store:
        outcome = asyncio.run(resume_job(store, job_id, evars, [sink], journal_wait, force))
    for host, verdict in outcome.read_back.items():
        click.echo(f"{host}: journal read back: {verdict}", err=True)
    job = outcome.job
    click.echo(f"job {job.id} {job.state}" + (f": {job.error}" if job.error else ""), err=True)
    if job.state == INTERRUPTED:
        sys.exit(1)
    sys.exit(job.exit_code or 0)


@jobs_group.command("cancel")
@db_option
@click.argument("job_id", type=int)
def cancel_cmd(db_url: str | None, job_id: int) -> None:
    """Ask a queued or running job to stop (its control server notices within seconds).

    \b
    Example:
      hostplane jobs cancel 12
    """
    from control_server import jobs

    with open_store(db_url) as store:
        if not jobs.cancel_job(store, job_id):
            job = _get(store, job_id)
            raise InputError(f"job {job_id} is {job.state}: nothing to cancel")
    click.echo(f"job {job_id}: cancel requested", err=True)


COMMANDS = [jobs_group]
