"""The JobStore and StoreSink on real databases: seqs, host states, owners, the writer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import update

from control_server.events import (
    ExecutorEvent,
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepCounts,
)
from control_server.store.jobstore import JobStore
from control_server.store.records import (
    FAILED,
    INTERRUPTED,
    JOB_STATE_EVENT,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    NewJob,
)
from control_server.store.schema import jobs
from control_server.store.sink import StoreSink


def _job(store: JobStore, hosts: tuple[str, ...] = ("h1", "h2")) -> int:
    return store.create_job(NewJob("template", "t", "all", tuple((h, f"req-{h}") for h in hosts),
                                   "tester", vars={"a": 1}), state=RUNNING)


def test_events_get_dense_ordered_seqs_and_host_states(store: JobStore) -> None:
    job_id = _job(store)
    store.record(job_id, RunStarted("r1", "t", ("h1", "h2"), False))
    store.record(job_id, HostStarted("h1"))
    store.record(job_id, ExecutorEvent("h1", {"event": "step_start", "index": 0}))
    finished = HostFinished("h1", "ok", StepCounts(ok=1), 0.5)
    store.record(job_id, finished)
    events = store.events(job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events] == [JOB_STATE_EVENT, "run_start", "host_start", "executor",
                                        "host_end"]
    assert events[3].host == "h1" and events[3].payload["event"]["event"] == "step_start"
    assert [e.seq for e in store.events(job_id, after_seq=3)] == [4, 5]
    job = store.get_job(job_id)
    assert job is not None and job.last_seq == 5
    h1, h2 = job.hosts
    assert (h1.state, h1.request_id, h1.attempts) == ("ok", "req-h1", 1)
    assert h1.result is not None and h1.result["counts"]["ok"] == 1
    assert (h2.state, h2.result) == ("pending", None)


def test_states_times_and_listing(store: JobStore) -> None:
    first = store.create_job(NewJob("adhoc", "uptime", "all", (("h1", None),), "a"))
    second = _job(store)
    job = store.get_job(first)
    assert job is not None and job.state == QUEUED and job.started_at is None
    store.set_state(first, RUNNING)
    store.set_state(first, SUCCEEDED, exit_code=0)
    store.set_state(second, FAILED, error="not ok: h1", exit_code=2)
    done = store.get_job(first)
    assert done is not None and done.started_at and done.finished_at
    assert done.finished_at >= done.started_at and done.exit_code == 0
    assert [j.id for j in store.list_jobs()] == [second, first]
    assert [j.id for j in store.list_jobs(FAILED)] == [second]
    assert [j.id for j in store.list_jobs([FAILED, SUCCEEDED], limit=1)] == [second]
    states = [e.payload["state"] for e in store.events(first) if e.kind == JOB_STATE_EVENT]
    assert states == [QUEUED, RUNNING, SUCCEEDED]
    assert store.get_job(12345) is None
    with pytest.raises(ValueError):
        store.set_state(first, "exploded")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _set_owner(store: JobStore, job_id: int, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def test_interrupted_when_the_owner_is_gone(store: JobStore) -> None:
    mine, dead, elsewhere_stale, elsewhere_fresh, rebooted = (_job(store) for _ in range(5))
    _set_owner(store, dead, owner_pid=_dead_pid())
    _set_owner(store, elsewhere_stale, owner_host="other-server", heartbeat_at=time.time() - 600)
    _set_owner(store, elsewhere_fresh, owner_host="other-server", heartbeat_at=time.time())
    _set_owner(store, rebooted, owner_boot="a-boot-before-this-one")
    gone = store.mark_interrupted_on_startup()
    assert sorted(gone) == sorted([dead, elsewhere_stale, rebooted])
    for job_id in (mine, elsewhere_fresh):
        job = store.get_job(job_id)
        assert job is not None and job.state == RUNNING
    job = store.get_job(dead)
    assert job is not None and job.state == INTERRUPTED and "stopped" in (job.error or "")
    assert store.events(dead)[-1].payload["state"] == INTERRUPTED
    assert store.mark_interrupted_on_startup() == []  # once only


def test_a_reused_pid_is_not_the_owner(store: JobStore) -> None:
    job_id = _job(store)
    _set_owner(store, job_id, owner_pid=os.getppid(), owner_start="12")
    assert store.mark_interrupted_on_startup() == [job_id]


def test_sink_writes_in_order_and_host_end_is_on_disk_when_emit_returns(store: JobStore) -> None:
    job_id = _job(store, ("h1",))
    sink = StoreSink(store, job_id)
    sink.emit(RunStarted("r", "t", ("h1",), False))
    sink.emit(HostStarted("h1"))
    for index in range(300):
        sink.emit(ExecutorEvent("h1", {"event": "step_end", "index": index, "status": "ok"}))
    sink.emit(HostFinished("h1", "ok", StepCounts(ok=300), 1.0))
    # No flush: host_end is flushed by emit itself.
    job = store.get_job(job_id)
    assert job is not None and job.hosts[0].state == "ok"
    events = store.events(job_id)
    indexes = [e.payload["event"]["index"] for e in events if e.kind == "executor"]
    assert indexes == list(range(300))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    sink.close()
    assert sink.errors == [] and sink.events == 303
    assert sink.writes < sink.events  # a burst goes in a few transactions


def test_sink_redacts_host_results(store: JobStore) -> None:
    job_id = _job(store, ("h1",))

    def hide(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: hide(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [hide(v) for v in obj]
        return obj.replace("hunter2", "********") if isinstance(obj, str) else obj

    sink = StoreSink(store, job_id, {"h1": hide})
    result = HostFinished("h1", "failed", StepCounts(failed=1), 1.0, error="exit 1: hunter2",
                          failed_steps=({"name": "x", "stderr": "pw hunter2"},))
    sink.emit(result)
    sink.emit(RunFinished("r", (result,), 1.0, 2))
    sink.close()
    text = repr([e.payload for e in store.events(job_id)])
    assert "hunter2" not in text and "exit 1: ********" in text


def test_a_broken_store_never_raises_into_the_run(store: JobStore) -> None:
    sink = StoreSink(store, 999_999)  # no such job: every write fails
    sink.emit(HostStarted("h1"))
    sink.emit(HostFinished("h1", "ok", StepCounts(), 0.1))
    sink.close()
    assert sink.errors and "999999" in sink.errors[0]


def test_sink_heartbeat_sees_a_cancel_request(store: JobStore) -> None:
    job_id = _job(store, ("h1",))
    seen = threading.Event()
    sink = StoreSink(store, job_id, on_cancel=seen.set, heartbeat_interval=0.05)
    before = store.get_job(job_id)
    assert store.request_cancel(job_id)
    assert seen.wait(10)
    sink.close()
    after = store.get_job(job_id)
    assert before is not None and after is not None and after.cancel_requested
    store.set_state(job_id, SUCCEEDED)
    assert not store.request_cancel(job_id)  # not active any more
