"""``jobs resume``: take up a job whose control server died, or whose hosts have no outcome
yet (connection lost and not reattached, or executor died).

For each host that was running, the host's journal of that request is followed (for up to
``journal_wait`` s: the executor journals every event on the host, see
``host_executor.journal``, and goes on alone after a lost connection):

- the sequence ended (``done``, or an ``error`` such as a lock not acquired): its events
  that never reached the store, and its result, are recorded; it is not run again;
- the executor died without an end (its journal lock is free), it was cancelled, or it
  never got the request (no journal): the host runs again with a new request id that
  skips every step with a recorded ``step_end`` (exactly once: ``resume`` in the request,
  undo data kept) — unless that attempt rolled back, which undid them;
- the sequence is still running after ``journal_wait``: the host is left alone, and the
  job stays ``interrupted`` for a later resume (``force`` runs it again anyway, as a new
  request: two executors would then overlap, so only for a host known to be wedged).

Hosts never started run as well; all as part of the same job, which then ends
``succeeded`` or ``failed`` from every host's outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from control_server import api, jobs
from control_server.errors import ExecutorError, InputError, TransportError
from control_server.events import (
    HOST_FAILED,
    HOST_OK,
    ExecutorEvent,
    HostFinished,
    Sink,
    StepCounts,
)
from control_server.inventory import Inventory
from control_server.runner import RESUMABLE_KINDS, HostPlan
from control_server.store.jobspec import request_from_job
from control_server.store.jobstore import JobStore
from control_server.store.records import (
    HOST_PENDING,
    HOST_RUNNING,
    INTERRUPTED,
    RUNNING,
    HostRecord,
    JobRecord,
)

JOURNAL_EVENT = "journal"  # the store's note of what a host's journal said
JOURNAL_POLL = 1.0


@dataclass
class ResumeOutcome:
    job: JobRecord
    read_back: dict[str, str] = field(default_factory=dict)  # host: what its journal said
    rerun: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)


@dataclass
class _Journal:
    events: list[dict[str, Any]]
    verdict: str  # finished | interrupted | died | running | missing | unreachable
    detail: str = ""


def _end_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") in ("done", "error")), None)


async def read_journal(plan: HostPlan, request_id: str, wait: float) -> _Journal:
    """Follow the host's journal of ``request_id`` to its end, for up to ``wait`` s."""
    events: list[dict[str, Any]] = []
    try:
        await plan.transport.connect()
    except TransportError as exc:
        return _Journal([], "unreachable", exc.reason)
    try:
        if wait <= 0:  # a look, not a follow
            events = await plan.delivery.fetch_journal(plan.transport, request_id)
            if _end_of(events) is None:
                return _Journal(events, "running", "the journal has no end yet")
        else:
            await asyncio.wait_for(
                plan.delivery.follow_journal(plan.transport, request_id, events.append), wait)
    except TimeoutError:
        return _Journal(_steps(events), "running", "the journal has no end yet")
    except TransportError as exc:
        return _Journal([], "unreachable", exc.reason)
    except ExecutorError as exc:  # the executor could not be uploaded to read the journal
        return _Journal([], "missing", exc.reason)
    finally:
        await plan.transport.close()
    error = next((e for e in events if e.get("event") == "error"
                  and e.get("code") in ("unknown_journal", "executor_died")), None)
    if error is not None and error.get("code") == "unknown_journal":
        return _Journal([], "missing", str(error.get("message") or ""))
    if error is not None:
        return _Journal(_steps(events), "died", str(error.get("message") or ""))
    end = _end_of(events) or {}
    verdict = "interrupted" if end.get("interrupted") else "finished"
    return _Journal(events, verdict, str(end.get("reason") or ""))


def _steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sequence's own events (not the follower's ``error``)."""
    return [e for e in events if not (e.get("event") == "error"
                                      and e.get("code") == "executor_died")]


def finished_steps(store: JobStore, job_id: int, host: str) -> list[dict[str, Any]]:
    """Every step of ``host`` that finished (a ``step_end`` not failed, from any attempt),
    for the executor's ``resume`` field: those steps are never run again."""
    done: dict[int, dict[str, Any]] = {}
    for stored in store.events(job_id, host=host, kinds=("executor",)):
        event = stored.payload.get("event", {})
        if event.get("event") != "step_end" or not isinstance(event.get("index"), int):
            continue
        # A step cut short (a cancel) failed without finishing: it is run again.
        if event.get("status") != "failed" or event.get("ignored"):
            done[event["index"]] = {"index": event["index"], "status": event.get("status"),
                                    "data": event.get("data")}
    return [done[i] for i in sorted(done)]


def journal_result(host: str, events: list[dict[str, Any]], duration: float) -> HostFinished:
    """A finished journal as the host's result (what the runner would have made of it)."""
    counts = StepCounts()
    failed: list[dict[str, Any]] = []
    for event in events:
        if event.get("event") == "step_end":
            counts = counts.add(str(event.get("status")))
            if event.get("status") == "failed":
                failed.append({k: event.get(k)
                               for k in ("index", "name", "action", "rc", "msg", "stderr")})
    end = _end_of(events) or {}
    rc = end.get("exit")
    if end.get("event") == "done" and rc == 0:
        return HostFinished(host, HOST_OK, counts, duration, executor_rc=0,
                            error="results read back from the host's journal",
                            error_kind="journal", failed_steps=tuple(failed))
    if end.get("event") == "error":
        why = f"{end.get('code')}: {end.get('message')}"
        kind = "lock" if end.get("code") == "lock_timeout" else "executor"
    else:
        step = failed[0] if failed else {}
        why = f"step {step.get('name')!r} failed" if step else "a step failed"
        kind = "step"
    return HostFinished(host, HOST_FAILED, counts, duration, error=why + " (read back from "
                        "the host's journal)", error_kind=kind, failed_steps=tuple(failed),
                        executor_rc=rc if isinstance(rc, int) else None)


def _seen(store: JobStore, job_id: int, host: str) -> set[tuple[str, Any]]:
    stored = store.events(job_id, host=host, kinds=("executor",))
    return {(str(e.payload.get("event", {}).get("event")), e.payload.get("event", {}).get("index"))
            for e in stored}


def _record_journal(store: JobStore, sink: Sink, job_id: int, plan: HostPlan,
                    journal: _Journal, started: float | None) -> None:
    """Record the journal's events the store never got, then (if it ended) the result."""
    seen = _seen(store, job_id, plan.host)
    for raw in journal.events:
        event = plan.redact(raw)
        if (str(event.get("event")), event.get("index")) not in seen:
            sink.emit(ExecutorEvent(plan.host, event))
    if journal.verdict == "finished":
        duration = max(0.0, time.time() - started) if started else 0.0
        sink.emit(journal_result(plan.host, [plan.redact(e) for e in journal.events],
                                 duration))


def _open(host: HostRecord) -> bool:
    """No outcome yet: not started, running, or lost/died (resumable) in an earlier run."""
    if host.state in (HOST_PENDING, HOST_RUNNING):
        return True
    return bool(host.result and host.result.get("error_kind") in RESUMABLE_KINDS)


def _continue_after(store: JobStore, job_id: int, plan: HostPlan, journal: _Journal | None
                    ) -> None:
    """Exactly once: the new request skips every step that has a ``step_end`` (its undo
    data kept) — unless the last attempt rolled back, which undid them."""
    end = _end_of(journal.events) if journal is not None else None
    if end is not None and end.get("rolled_back") is not None:
        return
    finished = finished_steps(store, job_id, plan.host)
    if finished:
        plan.request["resume"] = finished


def _load(store: JobStore, job_id: int, extra_vars: Mapping[str, Any] | None
          ) -> tuple[JobRecord, api.Task, api.RunConfig, dict[str, HostPlan]]:
    store.mark_interrupted_on_startup()
    job = store.get_job(job_id)
    if job is None:
        raise InputError(f"no job {job_id} in {store.url}")
    if job.state != INTERRUPTED:
        raise InputError(f"job {job_id} is {job.state}: only an interrupted job can be resumed")
    request = request_from_job(job, extra_vars)
    if not request.inventory_sources:
        raise InputError(f"job {job_id} has no inventory sources stored: cannot resume it")
    inventory = Inventory.load(list(request.inventory_sources), cwd=request.cwd)
    unfinished = [h.host for h in job.hosts if _open(h)]
    hosts = [inventory.host(name) for name in unfinished]
    plans = api.plan_hosts(hosts, request.task, request.extra_vars, request.config)
    return job, request.task, request.config, {p.host: p for p in plans}


async def resume_job(store: JobStore, job_id: int, extra_vars: Mapping[str, Any] | None = None,
                     sinks: Iterable[Sink] = (), journal_wait: float = 10.0,
                     force: bool = False) -> ResumeOutcome:
    """Read back lost hosts' journals, run the hosts that had not finished, end the job."""
    job, task, config, plans = _load(store, job_id, extra_vars)
    store.take_over(job_id, {})
    store.set_state(job_id, RUNNING)
    lost = {h.host: h for h in job.hosts if h.request_id and h.host in plans
            and (h.state == HOST_RUNNING or (h.state != HOST_PENDING and _open(h)))}
    journals = await asyncio.gather(*(
        read_journal(plans[name], str(h.request_id), journal_wait) for name, h in lost.items()
    ))
    outcome = ResumeOutcome(job)
    writer = jobs.store_sink(store, job_id, plans.values())
    for (name, host), journal in zip(lost.items(), journals, strict=True):
        _record_journal(store, writer, job_id, plans[name], journal, host.started_at)
        outcome.read_back[name] = journal.verdict + (f" ({journal.detail})"
                                                     if journal.detail else "")
        if journal.verdict == "running" and not force:
            outcome.still_running.append(name)
    writer.close()
    for name, verdict in outcome.read_back.items():
        store.record_note(job_id, JOURNAL_EVENT, {"host": name, "verdict": verdict}, host=name)
    finished = {n for n, j in zip(lost, journals, strict=True) if j.verdict == "finished"}
    outcome.rerun = [n for n in plans if n not in finished and n not in outcome.still_running]
    verdicts = dict(zip(lost, journals, strict=True))
    for name in outcome.rerun:
        _continue_after(store, job_id, plans[name], verdicts.get(name))
    store.take_over(job_id, {n: str(plans[n].request["id"]) for n in outcome.rerun})
    rerun = [plans[n] for n in outcome.rerun]
    if outcome.still_running:
        await _run_then_interrupt(store, job_id, rerun, config, task, sinks,
                                  outcome.still_running)
    elif rerun:
        await jobs.run_plans(store, job_id, rerun, config, api.describe(task), sinks,
                             running=True)
    else:
        jobs.finish_job(store, job_id)
    outcome.job = store.get_job(job_id) or job
    return outcome


async def _run_then_interrupt(store: JobStore, job_id: int, plans: list[HostPlan],
                              config: api.RunConfig, task: api.Task, sinks: Iterable[Sink],
                              still: list[str]) -> None:
    """Run what can run, but leave the job interrupted: ``still`` have no result yet."""
    if plans:
        sink = jobs.store_sink(store, job_id, plans)
        await api.execute_plans(plans, config, [sink, *sinks], api.describe(task))
        sink.close()
    store.set_state(job_id, INTERRUPTED,
                    error=f"still running on {', '.join(still)} (the journal has no end): "
                          "resume again later, or with --force")
