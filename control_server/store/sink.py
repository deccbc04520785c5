"""The job store's sink: every run event written by a writer thread, in few transactions.

The runner calls ``emit`` in its event loop; the write happens in a writer thread, so a
slow disk or a PostgreSQL round trip never holds the loop. What is queued goes in one
transaction (group commit), and when it commits depends on what it is:

- a run's or a host's start or end (``run_start``, ``host_start``, ``host_end``,
  ``run_end``) is committed the moment it is queued, with everything queued before it;
- the executor's own events (steps, output) wait up to ``LINGER`` s for one of those, so a
  host's steps go in the transaction of its ``host_end``, not one each. They are also in
  the host's journal: a control server killed meanwhile loses only what ``jobs resume``
  reads back from it (a host whose ``host_start`` is on disk is followed there).

Durability. ``durable()`` (awaited by a run before it sends a host its request: see
``jobs.gate_plans``) returns once everything emitted so far is committed, so a host is
recorded ``running``, with its request id, before its executor can start: a resume never
runs again a request it cannot find. By default (a caller outside an event loop) a
host's result and the run's end are flushed before ``emit`` returns. With ``wait=False``
(every run, through ``jobs.store_sink``) ``emit`` never waits: ``close()`` (or ``aclose()``
from a loop) returns once everything emitted is committed, and the CLI prints its recap
and exits, a job reads as finished, only after that. A SIGKILL can take only what was
received in the last transaction's time (well under a millisecond on SQLite; see
``store.engine``), and executor events still lingering.

``begin`` (``StoreSink.deferred``) runs first in the writer thread: open the store and
create the job (the CLI, while the run's connections open). Events emitted meanwhile
wait in the queue. With ``start`` (``jobs.run_plans``), the first transaction also sets
the queued job running, unless it was cancelled while queued (``on_cancel``).

Between events the thread beats the job's heartbeat and reads its cancel flag, which is
how a ``jobs cancel`` from another process reaches the running job (``on_cancel``).

Outages (``failures.transient``: the connection lost, PostgreSQL restarting, SQLite locked
past its busy timeout, no pooled connection). A batch whose write fails so is written
again, waiting ``RETRY_FIRST`` s doubling to ``RETRY_MAX`` between tries, until the
outage is ``RETRY_FOR`` s old; events emitted meanwhile queue behind it, in order, and
``durable()`` waits (a result received is never dropped for a blip). Only then, or at
once for any other error, is the batch given up on and said in ``errors``; until a write
gets through again, each later batch is tried once. A heartbeat that fails so
waits for the next beat. A fenced write refused (``queue.LeaseLost``: a newer claim holds
the job) is not retried: ``lease_lost`` is set, ``on_lost`` called once, and no batch is
written any more (each counts as done, so nobody waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeGuard

from control_server.events import (
    ExecutorEvent,
    HostFinished,
    RunEvent,
    RunFinished,
    event_to_dict,
)
from control_server.store.failures import lease_refused, transient
from control_server.store.owner import HEARTBEAT_INTERVAL
from control_server.store.records import JobRecord, NewJob


class RunStore(Protocol):
    """What a run's sink and its end write and read: ``JobStore`` (SQLAlchemy, loaded with
    the store), or the CLI's lean SQLite writer (``sqlite_writer.SqliteWriter``)."""

    url: str

    def create_job(self, job: NewJob, state: str = ..., *, start: bool = ...) -> int: ...
    def record_many(self, job_id: int, batch: list[RunEvent]) -> int: ...
    def start_and_record(self, job_id: int, batch: list[RunEvent]) -> tuple[int, bool]: ...
    def heartbeat(self, job_id: int) -> bool: ...
    def set_state(self, job_id: int, state: str, *, error: str | None = ...,
                  exit_code: int | None = ..., stopped_early: str | None = ...) -> float: ...
    def set_host_state(self, job_id: int, host: str, state: str) -> None: ...
    def get_job(self, job_id: int) -> JobRecord | None: ...
    def mark_interrupted_on_startup(self) -> list[int]: ...
    def close(self) -> None: ...


Redactor = Callable[[Any], Any]
# The store and the job to write to, and whether a cancel is wanted already.
Begin = Callable[[], "tuple[RunStore, int, bool]"]
MAX_BATCH = 500
FLUSH_TIMEOUT = 60.0
LINGER = 0.25  # the longest an executor event waits for a transaction of its own
# A store outage: the first wait before a batch is written again, doubling up to RETRY_MAX;
# RETRY_FOR covers a PostgreSQL restart or fail-over with room, and bounds how long a
# run's durable() and close() can wait.
RETRY_FIRST = 0.2
RETRY_MAX = 5.0
RETRY_FOR = 120.0
log = logging.getLogger("hostplane.store")


class _Wake:
    """Queued by ``durable()``: commit what is queued now, do not linger."""


_WAKE = _Wake()
_Item = RunEvent | threading.Event | _Wake | None
_Waiter = tuple[int, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class StoreSink:
    """Writes the events of one job; ``close()`` when the run is over."""

    def __init__(self, store: RunStore | None, job_id: int,
                 redactors: Mapping[str, Redactor] | None = None,
                 on_cancel: Callable[[], None] | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, wait: bool = True,
                 on_commit: Callable[[], None] | None = None,
                 begin: Begin | None = None, start: bool = False,
                 on_lost: Callable[[Exception], None] | None = None) -> None:
        self.store = store
        self.wait = wait  # emit waits for host_end / run_end to be committed
        self.job_id = job_id
        self.redactors = dict(redactors or {})
        self.on_cancel = on_cancel
        self.on_commit = on_commit  # from the writer thread, after each commit
        self.on_lost = on_lost  # from the writer thread, at the first LeaseLost
        self.lease_lost = False  # a fenced write was refused: nothing is written any more
        self.retries = 0  # writes tried again after a transient failure
        self._outage_since: float | None = None  # the first transient failure not yet over
        self.heartbeat_interval = heartbeat_interval
        self.errors: list[str] = []
        self.cancel_requested = False
        self.last_seq = 0
        self.writes = 0  # transactions
        self.events = 0
        self.write_seconds = 0.0  # time spent in transactions (the writer thread's)
        self.begun = threading.Event()  # ``begin`` ran (store and job_id are set, or not)
        self._begin = begin
        self._start_job = start  # the first write also sets the queued job running
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._emitted = 0  # events emitted (the emitting thread's count)
        self._done = 0  # events written, or given up on (the writer's count)
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-store",
                                        daemon=True)
        self._closed = False
        self._thread.start()

    @classmethod
    def deferred(cls, begin: Begin, redactors: Mapping[str, Redactor] | None = None,
                 **kw: Any) -> StoreSink:
        """A sink whose store and job come from ``begin``, called in the writer thread;
        if it raises, nothing is recorded and ``errors`` says why."""
        return cls(None, 0, redactors, begin=begin, **kw)

    # --- the runner's side --------------------------------------------------------------

    def emit(self, event: RunEvent) -> None:
        self._emitted += 1
        self._queue.put(event)
        if self.wait and isinstance(event, HostFinished | RunFinished):
            self.flush()

    async def durable(self) -> None:
        """Return once every event emitted so far is committed (or given up on: a broken
        store never holds a run)."""
        target = self._emitted
        if self._done >= target:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._done >= target or self._stopped:
                return
            self._waiters.append((target, loop, future))
        self._queue.put(_WAKE)
        await future

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until everything emitted so far is committed (False on timeout)."""
        if self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is queued (or give it up: ``RETRY_FOR``), then stop the thread."""
        if self._closed:
            return
        self._queue.put(None)
        self._thread.join(FLUSH_TIMEOUT + RETRY_FOR)
        self._closed = True

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop (awaits the writer's last commit)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._waiters.append((-1, loop, future))  # -1: only when the thread ends
        if not stopped:
            self._queue.put(None)
            await future
        self.close()  # the thread has ended or is ending: the join is immediate

    # --- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start()
            self._loop()
        finally:
            with self._lock:
                self._stopped = True
                waiters, self._waiters = self._waiters, []
            _wake(waiters)

    def _start(self) -> None:
        try:
            if self._begin is not None:
                self.store, self.job_id, cancel = self._begin()
                if cancel:
                    self._cancelled()
        except Exception as exc:  # the store cannot be opened: the run goes on unrecorded
            self.store = None
            self.errors.append(f"job store: {type(exc).__name__}: {exc}")
        finally:
            self.begun.set()

    def _loop(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_interval
        pending: list[RunEvent] = []
        pending_since = 0.0
        while True:
            now = time.monotonic()
            until = min(next_beat, pending_since + LINGER) if pending else next_beat
            batch = self._take(max(0.0, until - now))
            if batch and not pending:
                pending_since = time.monotonic()
            pending += [item for item in batch if _is_event(item)]
            urgent = any(not isinstance(item, ExecutorEvent) for item in batch)
            if pending and (urgent or len(pending) >= MAX_BATCH
                            or time.monotonic() >= pending_since + LINGER):
                self._write(pending)
                pending = []
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
        started = time.perf_counter()
        written = False
        if self.store is not None and not self.lease_lost:
            try:
                redacted = [self._redact(e) for e in batch]
                self._retrying(lambda: self._commit(redacted))
                written = True
            except Exception as exc:  # a broken store must not stop the run; say it at the end
                self._failed(exc, "")
            self._start_job = False  # given up on: later batches only record (as ever)
            self.write_seconds += time.perf_counter() - started
            self.writes += 1
        self.events += len(batch)
        self._advance(len(batch))
        if written and self.on_commit is not None:
            self.on_commit()

    def _commit(self, batch: list[RunEvent]) -> None:
        assert self.store is not None
        if self._start_job:
            self.last_seq, cancel = self.store.start_and_record(self.job_id, batch)
            self._start_job = False
            if cancel:
                self._cancelled()
        else:
            self.last_seq = self.store.record_many(self.job_id, batch)

    def _retrying(self, write: Callable[[], None]) -> None:
        """``write()``, tried again while it fails transiently, until the outage is
        ``RETRY_FOR`` s old (counted from its first failure, so the batches queued behind
        a given-up one are each tried once, not waited for as long again); raises what
        else it raised, or the last transient failure once the time is up."""
        delay = RETRY_FIRST
        while True:
            try:
                write()
            except Exception as exc:
                if not transient(exc):
                    raise
                now = time.monotonic()
                if self._outage_since is None:
                    self._outage_since = now
                    log.warning("job %s: the store is unavailable (%s); retrying its events "
                                "for up to %gs", self.job_id, _brief(exc), RETRY_FOR)
                if now + delay > self._outage_since + RETRY_FOR:
                    log.error("job %s: the store is still unavailable after %.0fs (%s): "
                              "events given up on", self.job_id, now - self._outage_since,
                              _brief(exc))
                    exc.add_note(f"given up: the store unavailable for {RETRY_FOR:g}s")
                    raise
                self.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                if self._outage_since is not None:
                    log.warning("job %s: the store is back after %.1fs; events written",
                                self.job_id, time.monotonic() - self._outage_since)
                    self._outage_since = None
                return

    def _failed(self, exc: Exception, what: str) -> None:
        if lease_refused(exc):
            self._lost(exc)
            return
        notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
        self.errors.append(f"{what}{type(exc).__name__}: {exc}{notes}")

    def _lost(self, exc: Exception) -> None:
        """A newer claim holds the job: every write would be refused from now on."""
        if self.lease_lost:
            return
        self.lease_lost = True
        self.errors.append(f"lease lost: {exc}")
        log.warning("job %s: %s; its events are no longer written", self.job_id, exc)
        if self.on_lost is not None:
            try:
                self.on_lost(exc)
            except Exception:  # the writer must go on counting what is emitted
                log.exception("job %s: on_lost failed", self.job_id)

    def _advance(self, count: int) -> None:
        with self._lock:
            self._done += count
            done = self._done
            ready = [w for w in self._waiters if 0 <= w[0] <= done]
            self._waiters = [w for w in self._waiters if not 0 <= w[0] <= done]
        _wake(ready)

    def _beat(self) -> None:
        if self.store is None or self.lease_lost:
            return
        try:
            wanted = self.store.heartbeat(self.job_id)
        except Exception as exc:
            if not transient(exc):  # the store away: the next beat tells
                self._failed(exc, "heartbeat: ")
            return
        if wanted:
            self._cancelled()

    def _cancelled(self) -> None:
        if not self.cancel_requested:
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


def _brief(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _is_event(item: _Item) -> TypeGuard[RunEvent]:
    return item is not None and not isinstance(item, threading.Event | _Wake)


def _wake(waiters: list[_Waiter]) -> None:
    for _target, loop, future in waiters:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
