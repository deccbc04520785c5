"""Jobs as asyncio tasks of the serve process, and the periodic ``host_facts`` refresh
(after each round, the facts other servers of the store stored are taken too).

Each job runs through ``jobs.execute_job`` (the job store's sink, its states, its cancel
flag), with one more sink, the fleet state; the job's event streams are woken by the
store's writer thread after each commit of the job's events. Cancelling is ``jobs.cancel_job``: this process's task is cancelled at once, one
of another process stops at its next heartbeat.

When serve stops, running jobs get ``--drain`` seconds to end; then their tasks are
cancelled, which ``execute_job`` records as ``interrupted`` (nobody asked for a cancel),
for ``hostplane jobs resume``. A SIGKILL leaves them ``running`` with a dead owner: the
next start-up marks them ``interrupted`` the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from control_server import api, jobs
from control_server.errors import HostplaneError
from control_server.events import Sink
from control_server.inventory import Inventory
from control_server.service.bus import Bus, job_topic
from control_server.service.state import FleetState
from control_server.store.jobstore import JobStore
from control_server.store.records import INTERRUPTED, QUEUED
from control_server.transport.base import STOP
from control_server.transport.pool import TransportPool

log = logging.getLogger("hostplane.serve")
FACTS_TEMPLATE = "host_facts"
FINISH_RETRY_DELAYS = (0, 0.5, 1, 2, 5, 10, 30, 60)


class JobRunner:
    def __init__(self, store: JobStore, inventory: Inventory, state: FleetState, bus: Bus,
                 config: api.RunConfig, pool: TransportPool | None = None) -> None:
        self.store = store
        self.pool = pool  # serve's warm connections
        self.inventory = inventory
        self.state = state
        self.bus = bus
        self.config = config
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.facts_ready = asyncio.Event()
        self._facts_task: asyncio.Task[None] | None = None

    # --- jobs ---------------------------------------------------------------------------

    def start(self, job: jobs.PreparedJob, reservation: int | None = None
              ) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks[job.id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self.tasks.pop(job.id, None)
            self.state.release(reservation)
            if finished.cancelled():
                self._never_started(job.id)
            self.bus.notify(job_topic(job.id))

        task.add_done_callback(done)
        return task

    async def _run(self, job: jobs.PreparedJob) -> None:
        sinks: list[Sink] = [self.state.sink(job.id)]
        topic = job_topic(job.id)
        try:
            await jobs.execute_job(self.store, job, sinks,
                                   on_commit=lambda: self.bus.notify_threadsafe(topic))
        except asyncio.CancelledError:
            raise  # serve is stopping: execute_job left the job interrupted
        except Exception:  # host trouble is the job's result; a bug or a busy store is not
            log.exception("job %s failed inside serve", job.id)
            await self._finish(job.id)

    async def _finish(self, job_id: int) -> None:
        """Set the job's end state, retrying while the store is busy: a job left running
        by a live server is never marked interrupted, so it would stay running."""
        for delay in FINISH_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(jobs.finish_job, self.store, job_id)
                return
            except Exception:
                log.exception("job %s: recording its end failed (retrying)", job_id)
        log.error("job %s: its end could not be recorded; it stays running", job_id)

    def _never_started(self, job_id: int) -> None:
        """A task cancelled before its first step (serve stopping at once)."""
        record = self.store.get_job(job_id)
        if record is not None and record.state == QUEUED:
            self.store.set_state(job_id, INTERRUPTED, error="serve stopped before the job ran")

    def cancel(self, job_id: int) -> bool:
        """Ask a job to stop; False when it is not queued or running."""
        return jobs.cancel_job(self.store, job_id)

    async def stop(self, drain: float) -> None:
        """Let running jobs end for ``drain`` seconds, then interrupt the rest."""
        if self._facts_task is not None:
            self._facts_task.cancel()
        pending = list(self.tasks.values())
        if pending and drain > 0:
            log.info("waiting up to %gs for %d running job(s)", drain, len(pending))
            await asyncio.wait(pending, timeout=drain)
        pending = [t for t in self.tasks.values() if not t.done()]
        STOP.mode = "detach"  # a server going away is no cancel: the executors go on
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)

    # --- facts --------------------------------------------------------------------------

    def start_facts(self, interval: float | None) -> None:
        """Gather facts now, then every ``interval`` seconds (None or 0: only now)."""
        self._facts_task = asyncio.create_task(self._facts_loop(interval), name="facts")

    async def _facts_loop(self, interval: float | None) -> None:
        while True:
            try:
                await self.refresh_facts()
            except Exception:
                log.exception("facts refresh failed")
            try:
                await self.load_stored_facts()
            except Exception:  # the store may answer at the next round
                log.exception("reading the stored facts failed")
            finally:
                self.facts_ready.set()
            if not interval:
                return
            await asyncio.sleep(interval)

    async def load_stored_facts(self) -> None:
        """Take what other servers of the store gathered since (read off the event loop,
        applied on it, where the fleet state is only ever changed)."""
        rows = await asyncio.to_thread(self.state.facts_table.all)
        self.state.take_facts(rows)

    async def refresh_facts(self) -> None:
        hosts = self.inventory.hosts("all")
        if not hosts:
            return
        config = replace(self.config, options=replace(self.config.options, check=False))
        try:
            plans = await asyncio.to_thread(api.plan_hosts, hosts,
                                            api.TemplateTask(FACTS_TEMPLATE), {}, config,
                                            self.pool)
        except HostplaneError as exc:
            log.error("facts refresh: %s", exc)
            return
        result = await api.execute_plans(plans, config, [self.state.sink()], FACTS_TEMPLATE)
        bad = {h: r.error for h, r in result.hosts.items() if r.status != "ok"}
        log.info("facts gathered from %d host(s)%s", len(hosts) - len(bad),
                 f"; not from {bad}" if bad else "")
