"""A run's events in few transactions, still durable where it matters (issue 9): executor
events ride with their host's ``host_end``; ``durable()`` gates a host's request on its
``host_start``; a deferred sink opens the store and creates the job in its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from store_helpers import wait_for

from control_server import api, jobs
from control_server.delivery import Delivery, SequenceOutcome
from control_server.events import ExecutorEvent, HostFinished, HostStarted, RunStarted, StepCounts
from control_server.inventory import Inventory
from control_server.store import sink as sink_module
from control_server.store.jobstore import JobStore
from control_server.store.records import JOB_STATE_EVENT, QUEUED, RUNNING, NewJob
from control_server.store.sink import StoreSink


def _job(store: JobStore, state: str = RUNNING) -> int:
    return store.create_job(NewJob("template", "t", "all", (("h1", "req-h1"),), "tester"),
                            state=state)


def _kinds(store: JobStore, job_id: int) -> list[str]:
    return [e.kind for e in store.events(job_id) if e.kind != JOB_STATE_EVENT]


def _step(index: int) -> ExecutorEvent:
    return ExecutorEvent("h1", {"event": "step_end", "index": index, "status": "ok"})


def test_executor_events_go_with_the_host_end_which_is_durable_at_once(
        store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "LINGER", 3600.0)  # only a host_end commits them
    job_id = _job(store)
    sink = StoreSink(store, job_id, wait=False)
    sink.emit(RunStarted("r", "t", ("h1",), False))
    sink.emit(HostStarted("h1"))
    wait_for("host_start on disk", lambda: _kinds(store, job_id) == ["run_start", "host_start"],
             10)
    before = sink.writes
    for index in range(20):
        sink.emit(_step(index))
        time.sleep(0.01)  # the writer takes each event alone: it still holds them
    assert _kinds(store, job_id) == ["run_start", "host_start"]
    sink.emit(HostFinished("h1", "ok", StepCounts(ok=20), 1.0))
    # No flush, no close: the host's end commits by itself, its steps with it.
    job = wait_for("host_end on disk", lambda: (j := store.get_job(job_id)) and
                   j.hosts[0].state == "ok" and j, 10)
    assert job.hosts[0].result is not None
    assert _kinds(store, job_id) == ["run_start", "host_start", *["executor"] * 20, "host_end"]
    assert sink.writes == before + 1
    sink.close()
    assert sink.errors == [] and sink.events == 23


def test_a_lone_executor_event_waits_at_most_the_linger(
        store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "LINGER", 0.05)
    job_id = _job(store)
    sink = StoreSink(store, job_id, wait=False)
    sink.emit(_step(0))
    wait_for("the step on disk without any host_end",
             lambda: _kinds(store, job_id) == ["executor"], 10)
    sink.close()


def test_durable_returns_once_the_host_start_is_committed(store: JobStore) -> None:
    job_id = _job(store)
    sink = StoreSink(store, job_id, wait=False)
    gate = threading.Event()
    record_many = store.record_many

    def slow(*args: Any, **kwargs: Any) -> int:
        gate.wait(10)  # a slow disk
        return record_many(*args, **kwargs)

    store.record_many = slow  # type: ignore[method-assign]

    async def run() -> None:
        sink.emit(HostStarted("h1"))
        waiting = asyncio.create_task(sink.durable())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the writer is stuck: nobody may send the request yet
        gate.set()
        await asyncio.wait_for(waiting, 10)
        job = store.get_job(job_id)
        assert job is not None and job.hosts[0].state == "running"
        await sink.durable()  # nothing new emitted: at once
        await sink.aclose()

    asyncio.run(run())
    assert sink.errors == []


def test_a_deferred_sink_creates_the_job_in_its_thread(store: JobStore) -> None:
    opened = threading.Event()
    commits: list[int] = []

    def begin() -> tuple[JobStore, int, bool]:
        opened.wait(10)  # SQLAlchemy's import, the schema check...
        spec = NewJob("adhoc", "true", "all", (("h1", "req-h1"),), "tester")
        return store, store.create_job(spec, state=QUEUED, start=True), False

    sink = StoreSink.deferred(begin, wait=False, on_commit=lambda: commits.append(1))

    async def run() -> None:
        sink.emit(RunStarted("r", "true", ("h1",), False))
        sink.emit(HostStarted("h1"))
        waiting = asyncio.create_task(sink.durable())
        await asyncio.sleep(0.2)
        assert not waiting.done() and not sink.begun.is_set()
        opened.set()
        await asyncio.wait_for(waiting, 10)
        sink.emit(HostFinished("h1", "ok", StepCounts(ok=1), 1.0))
        await sink.aclose()

    asyncio.run(run())
    assert sink.store is store and sink.errors == [] and commits
    job = store.get_job(sink.job_id)
    assert job is not None and job.state == RUNNING and job.hosts[0].state == "ok"
    states = [e.payload["state"] for e in store.events(job.id) if e.kind == JOB_STATE_EVENT]
    assert states == [QUEUED, RUNNING]
    assert _kinds(store, job.id) == ["run_start", "host_start", "host_end"]


def test_a_store_that_cannot_open_never_holds_the_run() -> None:
    def begin() -> tuple[JobStore, int, bool]:
        raise OSError("read-only file system")

    sink = StoreSink.deferred(begin, wait=False)

    async def run() -> None:
        sink.emit(HostStarted("h1"))
        await asyncio.wait_for(sink.durable(), 10)
        await sink.aclose()

    asyncio.run(run())
    assert sink.store is None and sink.events == 1
    assert sink.errors == ["job store: OSError: read-only file system"]


def test_start_job_unless_cancelled_while_queued(store: JobStore) -> None:
    job_id = _job(store, QUEUED)
    assert store.start_job(job_id) is False
    job = store.get_job(job_id)
    assert job is not None and job.state == RUNNING and job.started_at is not None
    other = _job(store, QUEUED)
    assert store.request_cancel(other)
    assert store.start_job(other) is True
    after = store.get_job(other)
    assert after is not None and after.state == QUEUED and after.started_at is None
    with pytest.raises(KeyError):
        store.start_job(999_999)


def test_gated_plans_send_nothing_before_the_job_is_durable(
        local_inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def fake_run(self: Delivery, transport: Any, request: dict[str, Any],
                       on_event: Any) -> SequenceOutcome:
        order.append(f"sent {request['id']}")
        return SequenceOutcome(None)

    class _Sink:
        async def durable(self) -> None:
            await asyncio.sleep(0.05)
            order.append("durable")

    monkeypatch.setattr(Delivery, "run", fake_run)
    hosts = Inventory.load([str(local_inv)]).hosts("all")
    plans = api.plan_hosts(hosts, api.AdhocTask(("true",)), {}, api.RunConfig())
    gated = jobs.gate_plans(plans, _Sink())  # type: ignore[arg-type]
    assert [p.request for p in gated] == [p.request for p in plans]
    assert gated[0].delivery.launcher() == plans[0].delivery.launcher()
    asyncio.run(gated[0].delivery.run(gated[0].transport, gated[0].request, lambda _e: None))
    assert order == ["durable", f"sent {plans[0].request['id']}"]


def test_a_queued_job_starts_in_the_transaction_of_its_first_events(store: JobStore) -> None:
    job_id = _job(store, QUEUED)
    sink = StoreSink(store, job_id, wait=False, start=True)
    sink.emit(RunStarted("r", "t", ("h1",), False))
    sink.emit(HostStarted("h1"))
    sink.close()
    job = store.get_job(job_id)
    assert job is not None and job.state == RUNNING and job.hosts[0].state == "running"
    assert sink.writes == 1 and not sink.cancel_requested
    states = [e.payload["state"] for e in store.events(job_id) if e.kind == JOB_STATE_EVENT]
    assert states == [QUEUED, RUNNING]


def test_a_job_cancelled_while_queued_is_not_started(store: JobStore) -> None:
    job_id = _job(store, QUEUED)
    assert store.request_cancel(job_id)
    seen = threading.Event()
    sink = StoreSink(store, job_id, wait=False, start=True, on_cancel=seen.set)
    sink.emit(RunStarted("r", "t", ("h1",), False))
    sink.close()
    job = store.get_job(job_id)
    assert seen.is_set() and sink.cancel_requested
    assert job is not None and job.state == QUEUED and job.started_at is None
