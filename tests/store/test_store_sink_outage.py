"""The job sink through a store outage: a batch whose write fails transiently is written
again (in order, later events behind it) until ``RETRY_FOR`` is up, then given up on; any
other error drops it at once, as before; a fencing refusal (``LeaseLost``) stops the sink
writing and tells ``on_lost`` once. ``durable()`` returns in every case."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest
from store_helpers import wait_for

from control_server.events import ExecutorEvent, HostFinished, HostStarted, RunEvent, StepCounts
from control_server.store import sink as sink_module
from control_server.store.queue import LeaseLost
from control_server.store.sink import StoreSink

LOCKED = sqlite3.OperationalError("database is locked")  # transient
BUG = sqlite3.OperationalError("no such table: events")  # not transient


class _Store:
    """A RunStore that fails as told: ``failures`` are raised, one a call, before any
    write succeeds; every call is recorded."""

    url = "stub://"

    def __init__(self, *failures: Exception, beats: list[Exception | bool] | None = None
                 ) -> None:
        self.failures = list(failures)
        self.beats = list(beats or [])
        self.calls: list[tuple[str, list[str]]] = []  # (method, what the batch held)
        self.written: list[str] = []
        self.beat_calls = 0
        self.lock = threading.Lock()

    def _call(self, method: str, batch: list[RunEvent]) -> int:
        names = [_name(e) for e in batch]
        with self.lock:
            self.calls.append((method, names))
            if self.failures:
                raise self.failures.pop(0)
            self.written += names
            return len(self.written)

    def record_many(self, job_id: int, batch: list[RunEvent]) -> int:
        return self._call("record_many", batch)

    def start_and_record(self, job_id: int, batch: list[RunEvent]) -> tuple[int, bool]:
        return self._call("start_and_record", batch), False

    def heartbeat(self, job_id: int) -> bool:
        self.beat_calls += 1
        if self.beats:
            outcome = self.beats.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return False


def _name(event: RunEvent) -> str:
    if isinstance(event, ExecutorEvent):
        return f"step{event.event['index']}"
    return event.kind


def _step(index: int) -> ExecutorEvent:
    return ExecutorEvent("h1", {"event": "step_end", "index": index, "status": "ok"})


def _end() -> HostFinished:
    return HostFinished("h1", "ok", StepCounts(ok=1), 1.0)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "RETRY_FIRST", 0.02)
    monkeypatch.setattr(sink_module, "RETRY_MAX", 0.1)


def _sink(store: _Store, **kw: Any) -> StoreSink:
    return StoreSink(store, 7, wait=False, **kw)  # type: ignore[arg-type]


def test_a_transient_failure_is_retried_and_later_events_queue_behind_it() -> None:
    store = _Store(LOCKED, LOCKED, LOCKED, LOCKED)
    sink = _sink(store)
    sink.emit(HostStarted("h1"))  # urgent: its write starts failing at once
    wait_for("the first retry", lambda: len(store.calls) >= 2, 10)
    for index in range(3):
        sink.emit(_step(index))  # emitted during the outage
    sink.emit(_end())
    sink.close()
    assert store.written == ["host_start", "step0", "step1", "step2", "host_end"]
    assert [names for _m, names in store.calls[:5]] == [["host_start"]] * 5  # one batch, kept
    assert sink.errors == [] and sink.retries == 4 and sink.events == 5


def test_the_retries_back_off_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread().name.startswith("job-7-"):  # the sink's writer
            waits.append(seconds)
            seconds = 0.001
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    store = _Store(*[LOCKED] * 6)
    sink = _sink(store)
    sink.emit(HostStarted("h1"))
    sink.close()
    assert waits == [0.02, 0.04, 0.08, 0.1, 0.1, 0.1]
    assert store.written == ["host_start"] and sink.errors == []


def test_an_outage_longer_than_retry_for_gives_the_batch_up_and_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "RETRY_FOR", 0.3)
    store = _Store(*[LOCKED] * 1000)
    sink = _sink(store)
    sink.emit(HostStarted("h1"))
    wait_for("the batch given up", lambda: sink.errors, 10)
    assert len(sink.errors) == 1 and "database is locked" in sink.errors[0]
    assert "given up: the store unavailable for 0.3s" in sink.errors[0]
    tried = len(store.calls)
    sink.emit(HostStarted("h2"))  # the same outage: tried once, not waited for again
    wait_for("the next batch given up", lambda: len(sink.errors) == 2, 10)
    assert len(store.calls) == tried + 1
    store.failures.clear()  # the store is back
    sink.emit(_end())
    assert sink.flush(10)
    assert store.written == ["host_end"] and len(sink.errors) == 2
    store.failures = [LOCKED] * 3  # a new outage: retried again from its own start
    sink.emit(HostStarted("h3"))
    sink.close()
    assert store.written == ["host_end", "host_start"] and len(sink.errors) == 2
    assert 3 <= sink.retries < 1000 and sink.events == 4


def test_a_non_transient_error_drops_the_batch_at_once_as_before() -> None:
    store = _Store(BUG)
    sink = _sink(store, start=True)
    sink.emit(HostStarted("h1"))
    assert sink.flush(10)  # a batch of its own
    sink.emit(_end())
    sink.close()
    assert [m for m, _n in store.calls] == ["start_and_record", "record_many"]
    assert store.written == ["host_end"]
    assert sink.retries == 0 and sink.errors == ["OperationalError: no such table: events"]


def test_the_start_is_retried_with_its_batch() -> None:
    store = _Store(LOCKED)
    sink = _sink(store, start=True)
    sink.emit(HostStarted("h1"))
    sink.close()
    assert [m for m, _n in store.calls] == ["start_and_record", "start_and_record"]
    assert store.written == ["host_start"] and sink.errors == []


def test_durable_waits_out_an_outage_then_returns() -> None:
    store = _Store(*[LOCKED] * 5)
    sink = _sink(store)

    async def run() -> float:
        sink.emit(HostStarted("h1"))
        started = time.monotonic()
        await asyncio.wait_for(sink.durable(), 10)
        assert store.written == ["host_start"]  # written, not given up on
        return time.monotonic() - started

    waited = asyncio.run(run())
    assert waited >= 0.02 + 0.04 + 0.08  # it did wait for the retries
    sink.close()
    assert sink.errors == []


def test_durable_returns_when_the_batch_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "RETRY_FOR", 0.3)
    store = _Store(*[LOCKED] * 1000)
    sink = _sink(store)

    async def run() -> None:
        sink.emit(HostStarted("h1"))
        await asyncio.wait_for(sink.durable(), 10)

    asyncio.run(run())
    assert store.written == [] and len(sink.errors) == 1
    store.failures.clear()
    sink.close()


def test_a_lease_lost_on_a_write_stops_writing_and_calls_on_lost_once() -> None:
    lost = LeaseLost(7, 1, 2, "server-b")
    store = _Store(lost, lost, lost)
    told: list[tuple[Exception, bool]] = []
    sink: StoreSink

    def on_lost(exc: Exception) -> None:
        told.append((exc, sink.lease_lost))

    sink = _sink(store, on_lost=on_lost)

    async def run() -> None:
        sink.emit(HostStarted("h1"))
        await asyncio.wait_for(sink.durable(), 10)
        for index in range(3):
            sink.emit(_step(index))
        sink.emit(_end())
        await asyncio.wait_for(sink.durable(), 10)  # counted as done: nobody waits
        await asyncio.wait_for(sink.aclose(), 10)

    asyncio.run(run())
    assert told == [(lost, True)] and sink.lease_lost
    assert store.calls == [("record_many", ["host_start"])]  # never retried, nothing after
    assert store.written == [] and sink.retries == 0 and sink.events == 5
    assert sink.errors == [f"lease lost: {lost}"]


def test_a_lease_lost_on_a_heartbeat_stops_writing_and_beating() -> None:
    lost = LeaseLost(7, 1, 2, "server-b")
    store = _Store(beats=[lost])
    told: list[Exception] = []
    sink = _sink(store, on_lost=told.append, heartbeat_interval=0.02)
    wait_for("the refused beat", lambda: told, 10)
    time.sleep(0.1)  # several beats' time
    sink.emit(_end())
    assert sink.flush(10)
    sink.close()
    assert told == [lost] and sink.lease_lost and store.beat_calls == 1
    assert store.calls == [] and sink.events == 1


def test_on_lost_raising_does_not_stop_the_writer() -> None:
    def broken(_exc: Exception) -> None:
        raise RuntimeError("callback bug")

    store = _Store(LeaseLost(7, 1, 2, "server-b"))
    sink = _sink(store, on_lost=broken)
    sink.emit(HostStarted("h1"))
    sink.emit(_end())
    assert sink.flush(10)
    sink.close()
    assert sink.lease_lost and sink.events == 2


def test_a_transient_heartbeat_failure_waits_for_the_next_beat() -> None:
    store = _Store(beats=[LOCKED, LOCKED, True])  # the third beat reads a cancel
    cancelled = threading.Event()
    sink = _sink(store, on_cancel=cancelled.set, heartbeat_interval=0.02)
    assert cancelled.wait(10)
    sink.close()
    assert sink.errors == [] and store.beat_calls >= 3 and sink.cancel_requested


def test_a_non_transient_heartbeat_failure_is_said_as_before() -> None:
    store = _Store(beats=[BUG])
    sink = _sink(store, heartbeat_interval=0.02)
    wait_for("the failed beat", lambda: sink.errors, 10)
    sink.close()
    assert sink.errors[0] == "heartbeat: OperationalError: no such table: events"
