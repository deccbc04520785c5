"""The job store's sink: every run event written, and committed, the moment it arrives.

The runner calls ``emit`` in its event loop; the write happens in a writer thread, so a
slow disk or a PostgreSQL round trip never holds the loop. The thread writes as soon as
an event is queued (no timer): alone, an event is one transaction; in a burst, everything
queued meanwhile goes in the next transaction (group commit), so the backlog never grows.

Durability, two ways. By default (a caller outside an event loop) a host's result
(``host_end``) and the run's end are flushed before ``emit`` returns. With
``wait=False`` (every run, through ``jobs.store_sink``) ``emit`` never waits: the writer
commits each ``host_end`` the moment it is queued, and what makes it *reported* durable is
the run's end: ``close()`` (or ``aclose()`` from a loop, which waits in a thread) returns
once everything emitted is committed, and the CLI prints its recap and exits, a job reads
as finished, only after that. So the event loop never blocks on the disk, and a host's
result is on disk before anyone is told the run is over. A SIGKILL can take only events
received in the last transaction's time (well under a millisecond on SQLite; see
``store.engine``); those hosts are not recorded as finished and a resume runs them again.

Between events the thread beats the job's heartbeat and reads its cancel flag, which is
how a ``jobs cancel`` from another process reaches the running job (``on_cancel``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from control_server.events import HostFinished, RunEvent, RunFinished, event_to_dict
from control_server.store.jobstore import JobStore
from control_server.store.owner import HEARTBEAT_INTERVAL

Redactor = Callable[[Any], Any]
MAX_BATCH = 500
FLUSH_TIMEOUT = 60.0

_Item = RunEvent | threading.Event | None


class StoreSink:
    """Writes the events of one job; ``close()`` when the run is over."""

    def __init__(self, store: JobStore, job_id: int,
                 redactors: Mapping[str, Redactor] | None = None,
                 on_cancel: Callable[[], None] | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, wait: bool = True) -> None:
        self.store = store
        self.wait = wait  # emit waits for host_end / run_end to be committed
        self.job_id = job_id
        self.redactors = dict(redactors or {})
        self.on_cancel = on_cancel
        self.heartbeat_interval = heartbeat_interval
        self.errors: list[str] = []
        self.cancel_requested = False
        self.last_seq = 0
        self.writes = 0  # transactions
        self.events = 0
        self.write_seconds = 0.0  # time spent in transactions (the writer thread's)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-store",
                                        daemon=True)
        self._closed = False
        self._thread.start()

    # --- the runner's side --------------------------------------------------------------

    def emit(self, event: RunEvent) -> None:
        self._queue.put(event)
        if self.wait and isinstance(event, HostFinished | RunFinished):
            self.flush()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until everything emitted so far is committed (False on timeout)."""
        if self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._closed:
            return
        self._queue.put(None)
        self._thread.join(FLUSH_TIMEOUT)
        self._closed = True

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop (the wait runs in a thread)."""
        if not self._closed:
            await asyncio.to_thread(self.close)

    # --- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            batch = self._take(max(0.0, next_beat - time.monotonic()))
            self._write([item for item in batch if _is_event(item)])
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in batch):
                return
            # Also between events of a busy job: a cancel must not wait for a quiet moment.
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + self.heartbeat_interval

    def _take(self, timeout: float) -> list[_Item]:
        """What is queued: waits up to ``timeout`` for the first item (none: [])."""
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[RunEvent]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        try:
            self.last_seq = self.store.record_many(self.job_id, [self._redact(e) for e in batch])
        except Exception as exc:  # a broken store must not stop the run; say it at the end
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self.write_seconds += time.perf_counter() - started
        self.writes += 1
        self.events += len(batch)

    def _beat(self) -> None:
        try:
            wanted = self.store.heartbeat(self.job_id)
        except Exception as exc:
            self.errors.append(f"heartbeat: {type(exc).__name__}: {exc}")
            return
        if wanted and not self.cancel_requested:
            self.cancel_requested = True
            if self.on_cancel is not None:
                self.on_cancel()

    def _redact(self, event: RunEvent) -> RunEvent:
        # Executor events come redacted by the runner; results may quote a host's stderr.
        if isinstance(event, HostFinished) and event.host in self.redactors:
            return _redacted_host(event, self.redactors[event.host])
        if isinstance(event, RunFinished) and self.redactors:
            hosts = tuple(_redacted_host(h, self.redactors[h.host]) if h.host in self.redactors
                          else h for h in event.hosts)
            return RunFinished(event.run_id, hosts, event.duration, event.exit_code,
                               event.stopped_early, time=event.time)
        return event


def _is_event(item: _Item) -> TypeGuard[RunEvent]:
    return item is not None and not isinstance(item, threading.Event)


def _redacted_host(event: HostFinished, redact: Redactor) -> HostFinished:
    data = redact(event_to_dict(event))
    return HostFinished(
        host=event.host,
        status=event.status,
        counts=event.counts,
        duration=event.duration,
        error=data.get("error"),
        error_kind=event.error_kind,
        failed_steps=tuple(data.get("failed_steps") or ()),
        executor_rc=event.executor_rc,
        uploaded=event.uploaded,
        time=event.time,
    )
