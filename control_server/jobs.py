"""Jobs: every run recorded in the job store; what the CLI and the HTTP API call.

    store = JobStore.open(url)
    store.mark_interrupted_on_startup()
    job = prepare_job(store, JobRequest(pattern, task, vars, config, sources), inventory)
    result = await execute_job(store, job, sinks=[...])  # or: job_id = await run_job(...)
    cancel_job(store, job.id)                            # from anywhere in the process

A CLI run records itself through ``record_run`` (a sink; ``record_run_deferred`` opens
the store and creates the job in the sink's writer thread, while the run's connections
open); ``resume_job`` (in ``control_server.store.resume``) takes an interrupted job up
again. Either way no host is sent its request before its job and its ``host_start`` are
committed (``gate_plans``): a killed control server leaves a job that knows every request
it sent, so ``jobs resume`` runs nothing twice.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from control_server import api
from control_server.delivery import Delivery, EventHandler, SequenceOutcome
from control_server.errors import InputError
from control_server.events import (
    HOST_OK,
    HOST_SKIPPED,
    HostFinished,
    RunEvent,
    RunFinished,
    Sink,
    StepCounts,
)
from control_server.inventory import Inventory
from control_server.runner import RESUMABLE_KINDS, HostPlan, RunResult, exit_code_for
from control_server.store.jobspec import JobRequest, new_job
from control_server.store.records import (
    CANCELLED,
    FAILED,
    HOST_CANCELLED,
    HOST_PENDING,
    HOST_RUNNING,
    INTERRUPTED,
    QUEUED,
    SUCCEEDED,
    JobRecord,
)
from control_server.store.sink import Begin, RunStore, StoreSink

if TYPE_CHECKING:  # SQLAlchemy loads with the store: the CLI opens it in a thread
    from control_server.store.jobstore import JobStore
    from control_server.transport.base import Transport
    from control_server.transport.pool import TransportPool

__all__ = [
    "JobRecorder",
    "JobRequest",
    "PreparedJob",
    "cancel_job",
    "execute_job",
    "finish_job",
    "gate_plans",
    "host_results",
    "prepare_job",
    "record_run",
    "record_run_deferred",
    "run_finished",
    "run_job",
]


@dataclass
class PreparedJob:
    """A created job (``queued``) with its hosts rendered, ready to execute."""

    id: int
    request: JobRequest
    plans: list[HostPlan]


# The jobs this process is executing: how ``cancel_job`` reaches a running job's task.
_RUNNING: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}


def prepare_job(store: JobStore, request: JobRequest, inventory: Inventory,
                pool: TransportPool | None = None) -> PreparedJob:
    """Render every host (an ``InputError`` creates no job), then create the job
    (``pool``: serve's warm connections, see ``api.plan_hosts``)."""
    hosts = inventory.hosts(request.pattern, request.config.limit)
    plans = api.plan_hosts(hosts, request.task, request.extra_vars, request.config, pool)
    job_id = store.create_job(new_job(request, plans), state=QUEUED)
    return PreparedJob(job_id, request, plans)


def store_sink(store: RunStore | None, job_id: int, plans: Iterable[HostPlan],
               on_cancel: Callable[[], None] | None = None,
               on_commit: Callable[[], None] | None = None,
               begin: Begin | None = None, start: bool = False) -> StoreSink:
    """The job's sink for a run in the event loop: ``emit`` never waits for the disk; the
    run's end does (``close``/``aclose``, then the job's final state). ``begin``: see
    ``StoreSink.deferred``."""
    return StoreSink(store, job_id, {p.host: p.redact for p in plans}, on_cancel=on_cancel,
                     wait=False, on_commit=on_commit, begin=begin, start=start)


class _GatedDelivery(Delivery):
    """A host's delivery that sends the request only once ``gate`` returns."""

    def __init__(self, inner: Delivery, gate: Callable[[], Awaitable[None]]) -> None:
        super().__init__(**{f.name: getattr(inner, f.name) for f in dataclasses.fields(inner)})
        self._gate = gate

    async def run(self, transport: Transport, request: dict[str, Any],
                  on_event: EventHandler) -> SequenceOutcome:
        await self._gate()
        return await super().run(transport, request, on_event)


def gate_plans(plans: Iterable[HostPlan], sink: StoreSink) -> list[HostPlan]:
    """``plans`` whose requests are sent once what the sink was given is committed (the
    job, the host's ``host_start``): the connection opens meanwhile."""
    return [replace(p, delivery=_GatedDelivery(p.delivery, sink.durable)) for p in plans]


async def execute_job(store: JobStore, job: PreparedJob, sinks: Iterable[Sink] = (),
                      on_commit: Callable[[], None] | None = None) -> RunResult | None:
    """Run a prepared job to its end and set its final state; None if it was cancelled
    through ``cancel_job``. Cancelled any other way (the server shutting down), the job
    is left ``interrupted`` (resumable) and the cancellation goes on. ``on_commit``: called
    from the store's writer thread after each commit of the job's events."""
    return await run_plans(store, job.id, job.plans, job.request.config,
                           api.describe(job.request.task), sinks, on_commit=on_commit)


async def run_plans(store: JobStore, job_id: int, plans: list[HostPlan], config: api.RunConfig,
                    what: str, sinks: Iterable[Sink] = (), running: bool = False,
                    on_commit: Callable[[], None] | None = None) -> RunResult | None:
    """Run ``plans`` as (part of) job ``job_id``, then set the job's final state
    (``running``: the job is in that state already)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("run_plans must run inside an asyncio task")

    def cancel_from_writer() -> None:  # the sink's thread saw the job's cancel flag
        loop.call_soon_threadsafe(task.cancel)

    def cancelled_meanwhile() -> tuple[JobStore, int, bool]:
        return store, job_id, store.heartbeat(job_id)

    # A queued job is set running by the writer's first transaction, with the run's first
    # events, unless it was cancelled while queued: the cancel then stops the run before
    # any request is sent (the plans are gated on that transaction).
    sink = store_sink(store, job_id, plans, cancel_from_writer, on_commit,
                      cancelled_meanwhile if running else None, start=not running)
    _RUNNING[job_id] = (loop, task)
    try:
        result = await api.execute_plans(gate_plans(plans, sink), config, [sink, *sinks],
                                         what)
        await sink.aclose()  # every host_end committed, the loop free meanwhile
    except asyncio.CancelledError:
        sink.close()
        if sink.cancel_requested or _cancel_wanted(store, job_id):
            finish_cancelled(store, job_id)
            task.uncancel()
            return None
        store.set_state(job_id, INTERRUPTED, error="the control server stopped the run")
        raise
    finally:
        _RUNNING.pop(job_id, None)
    finish_job(store, job_id, sink)
    return result


def _cancel_wanted(store: JobStore, job_id: int) -> bool:
    job = store.get_job(job_id)
    return bool(job and job.cancel_requested)


async def run_job(store: JobStore, request: JobRequest, inventory: Inventory,
                  sinks: Iterable[Sink] = ()) -> int:
    """Create, run and finish a job; its id (read the outcome with ``store.get_job``)."""
    job = prepare_job(store, request, inventory)
    await execute_job(store, job, sinks)
    return job.id


def cancel_job(store: JobStore, job_id: int) -> bool:
    """Ask a job to stop: one this process runs is cancelled now, one another process runs
    stops at its next heartbeat (``store.owner.HEARTBEAT_INTERVAL``). False if the job is
    neither queued nor running."""
    if not store.request_cancel(job_id):
        return False
    running = _RUNNING.get(job_id)
    if running is not None:
        loop, task = running
        loop.call_soon_threadsafe(task.cancel)
    return True


def finish_job(store: RunStore, job_id: int, sink: StoreSink | None = None) -> JobRecord:
    """Write what is left and set the final state from every host's outcome; the job as
    it now is."""
    if sink is not None:
        sink.close()
    job = _job(store, job_id)
    state, error, code, stopped = _outcome(job)
    at = store.set_state(job_id, state, error=error, exit_code=code, stopped_early=stopped)
    # What set_state wrote (one job_state event more), without reading the job again.
    return replace(job, state=state, error=error, exit_code=code, stopped_early=stopped,
                   finished_at=at, last_seq=job.last_seq + 1)


def _outcome(job: JobRecord) -> tuple[str, str | None, int, str | None]:
    """The final state, error, exit code and early stop that the hosts' outcomes make."""
    results = host_results(job)
    unfinished = [h.host for h in job.hosts if h.state in (HOST_PENDING, HOST_RUNNING)]
    code = exit_code_for(list(results.values()))
    stopped = next((r.error for r in results.values() if r.status == HOST_SKIPPED and r.error),
                   None)
    open_ = [h for h, r in results.items() if r.error_kind in RESUMABLE_KINDS]
    if open_ and not unfinished:
        # Still running after a lost connection, or its executor died: not an outcome yet.
        return (INTERRUPTED, f"no outcome yet for {', '.join(open_)}: `hostplane jobs "
                "resume` follows or continues them", code, stopped)
    if unfinished:
        return FAILED, f"no result for {', '.join(unfinished)}", code or 2, stopped
    if code == 0:
        return SUCCEEDED, None, 0, stopped
    bad = [h for h, r in results.items() if r.status != HOST_OK]
    return FAILED, f"not ok: {', '.join(bad)}", code, stopped


def finish_cancelled(store: RunStore, job_id: int) -> None:
    for host in _job(store, job_id).hosts:
        if host.state in (HOST_PENDING, HOST_RUNNING):
            store.set_host_state(job_id, host.host, HOST_CANCELLED)
    store.set_state(job_id, CANCELLED, error="cancelled")


def _job(store: RunStore, job_id: int) -> JobRecord:
    job = store.get_job(job_id)
    if job is None:
        raise InputError(f"no job {job_id} in {store.url}")
    return job


# --- a run started elsewhere (the CLI) ---------------------------------------------------


class JobRecorder:
    """A sink recording a run as a job, created running: it ends with the run's last event;
    a process that exits before that leaves it ``interrupted`` (``cancelled`` after a
    ``jobs cancel``, which stops this process as Ctrl-C would). A store that could not be
    opened is told to ``on_error`` at the run's end; the run itself never fails for it."""

    def __init__(self, sink: StoreSink, on_finish: Callable[[JobRecord], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.sink = sink
        self.on_finish = on_finish
        self.on_error = on_error
        self.job: JobRecord | None = None
        atexit.register(self._at_exit)

    def emit(self, event: RunEvent) -> None:
        self.sink.emit(event)
        if not isinstance(event, RunFinished):
            return
        self.sink.close()
        atexit.unregister(self._at_exit)
        if self.sink.store is None:
            if self.on_error is not None:
                self.on_error("; ".join(self.sink.errors))
            return
        self.job = finish_job(self.sink.store, self.sink.job_id, self.sink)
        if self.on_finish is not None:
            self.on_finish(self.job)

    def _at_exit(self) -> None:
        if self.job is not None:
            return
        self.sink.close()
        store, job_id = self.sink.store, self.sink.job_id
        if store is None:
            return
        if self.sink.cancel_requested:
            finish_cancelled(store, job_id)
        else:  # Ctrl-C, or an error: the run did not end, so the job may be resumed
            store.set_state(job_id, INTERRUPTED,
                            error="the control server stopped before the run ended")


def _interrupt_me() -> None:
    # From the sink's thread: SIGINT makes asyncio.run cancel the run, as Ctrl-C does, and
    # the CLI exits 130; the recorder's exit hook then marks the job cancelled.
    os.kill(os.getpid(), signal.SIGINT)


def record_run(store: RunStore, request: JobRequest, plans: list[HostPlan],
               on_finish: Callable[[JobRecord], None] | None = None) -> JobRecorder:
    """Create the job (running) for a run about to start with ``plans``; add the result
    as a sink."""
    job_id = store.create_job(new_job(request, plans), state=QUEUED, start=True)
    return JobRecorder(store_sink(store, job_id, plans, _interrupt_me), on_finish)


def record_run_deferred(open_store: Callable[[], RunStore], request: Callable[[], JobRequest],
                        plans: list[HostPlan],
                        on_finish: Callable[[JobRecord], None] | None = None,
                        on_error: Callable[[str], None] | None = None
                        ) -> tuple[JobRecorder, list[HostPlan]]:
    """``record_run`` off the run's critical path: ``open_store`` and ``request`` are
    called, and the job created, in the sink's writer thread while the run's connections
    open. Run the plans returned: each host's request waits for the job (``gate_plans``)."""

    def begin() -> tuple[RunStore, int, bool]:
        store = open_store()
        job_id = store.create_job(new_job(request(), plans), state=QUEUED, start=True)
        return store, job_id, False

    sink = store_sink(None, 0, plans, _interrupt_me, begin=begin)
    return JobRecorder(sink, on_finish, on_error), gate_plans(plans, sink)


# --- reading a job back ------------------------------------------------------------------


def host_finished(data: Mapping[str, Any]) -> HostFinished:
    """A stored ``host_end`` payload as the event it was."""
    counts = StepCounts(**{k: int(v) for k, v in (data.get("counts") or {}).items()})
    return HostFinished(
        host=str(data["host"]), status=str(data["status"]), counts=counts,
        duration=float(data.get("duration") or 0.0), error=data.get("error"),
        error_kind=data.get("error_kind"),
        failed_steps=tuple(data.get("failed_steps") or ()),
        executor_rc=data.get("executor_rc"), uploaded=bool(data.get("uploaded")),
        time=float(data.get("time") or 0.0),
    )


_NO_RESULT = {
    HOST_PENDING: "not started",
    HOST_RUNNING: "no result: the run stopped while it ran (`hostplane jobs resume` reads "
                  "its journal back)",
    HOST_CANCELLED: "cancelled",
}


def host_results(job: JobRecord) -> dict[str, HostFinished]:
    """Every host's outcome in run order; a host without one says why it has none."""
    out: dict[str, HostFinished] = {}
    for host in job.hosts:
        if host.result is not None:
            out[host.host] = host_finished(host.result)
        else:
            out[host.host] = HostFinished(host.host, host.state, StepCounts(), 0.0,
                                          error=_NO_RESULT.get(host.state, host.state),
                                          error_kind=host.state)
    return out


def run_finished(job: JobRecord) -> RunFinished:
    """The job's recap as the ``run_end`` event a run would have ended with."""
    results = host_results(job)
    end = job.finished_at or job.started_at or job.created_at
    duration = max(0.0, end - (job.started_at or job.created_at))
    code = job.exit_code if job.exit_code is not None else exit_code_for(list(results.values()))
    return RunFinished(f"job-{job.id}", tuple(results.values()), duration, code,
                       job.stopped_early, time=end)
