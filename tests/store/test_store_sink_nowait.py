"""A run's sink never blocks the event loop on the disk; its end waits (issue 9)."""

from __future__ import annotations

import asyncio
import threading

from control_server.events import HostFinished, HostStarted, RunStarted, StepCounts
from control_server.store.jobstore import JobStore
from control_server.store.records import RUNNING, NewJob
from control_server.store.sink import StoreSink


def _job(store: JobStore) -> int:
    return store.create_job(NewJob("template", "t", "all", (("h1", "req-h1"),), "tester"),
                            state=RUNNING)


def test_emit_does_not_wait_and_aclose_makes_every_host_end_durable(store: JobStore) -> None:
    job_id = _job(store)
    sink = StoreSink(store, job_id, wait=False)
    gate = threading.Event()
    record_many = store.record_many

    def slow(*args: object, **kwargs: object) -> int:
        gate.wait(5)  # a slow disk: the writer is stuck until the loop is done emitting
        return record_many(*args, **kwargs)  # type: ignore[arg-type]

    store.record_many = slow  # type: ignore[method-assign]

    async def run() -> None:
        sink.emit(RunStarted("r", "t", ("h1",), False))
        sink.emit(HostStarted("h1"))
        sink.emit(HostFinished("h1", "ok", StepCounts(ok=1), 1.0))  # returns at once
        assert not gate.is_set()
        gate.set()
        await sink.aclose()

    asyncio.run(run())
    job = store.get_job(job_id)
    assert job is not None and job.hosts[0].state == "ok"
    assert sink.errors == [] and sink.events == 3


def test_a_runs_sink_does_not_wait() -> None:
    from control_server import jobs

    class _Store:
        def heartbeat(self, job_id: int) -> bool:
            return False

    sink = jobs.store_sink(_Store(), 1, [])  # type: ignore[arg-type]
    assert sink.wait is False
    sink.close()
