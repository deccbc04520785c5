"""Runs recorded as jobs, through the library API, with the local transport (the real
executor runs as a subprocess): every event in order, host outcomes, secrets, cancel."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from store_helpers import SECRET, executor_events

from control_server import api, jobs
from control_server.events import Collector, event_to_dict
from control_server.inventory import Inventory
from control_server.params import MASK
from control_server.store.jobspec import JobRequest
from control_server.store.jobstore import JobStore
from control_server.store.records import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    JOB_STATE_EVENT,
    QUEUED,
    RUNNING,
    SUCCEEDED,
)
from control_server.store.schema import events, job_hosts
from control_server.store.schema import jobs as jobs_table
from control_server.transport.base import STOP


def _request(inv: Path, task: api.Task, templates: Path, **extra: object) -> JobRequest:
    config = api.RunConfig(templates_dirs=(templates,))
    return JobRequest("all", task, dict(extra), config, (str(inv),), who="tester")


async def test_a_run_is_a_job_with_every_event_in_order(
    store: JobStore, local_inv: Path, templates: Path
) -> None:
    seen = Collector()
    request = _request(local_inv, api.TemplateTask("two_steps"), templates)
    job_id = await jobs.run_job(store, request, Inventory.load([str(local_inv)]), [seen])
    job = store.get_job(job_id)
    assert job is not None
    assert (job.state, job.exit_code, job.who, job.what, job.pattern) == (
        SUCCEEDED, 0, "tester", "two_steps", "all")
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at
    (host,) = job.hosts
    assert (host.host, host.state, host.attempts) == ("localhost", "ok", 1)
    assert host.request_id and host.result and host.result["counts"]["changed"] == 2
    stored = store.events(job_id)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    # Exactly what the run published, in the same order (through JSON and back).
    run_events = [e.payload for e in stored if e.kind != JOB_STATE_EVENT]
    assert run_events == [json.loads(json.dumps(event_to_dict(e), default=str))
                          for e in seen.events]
    kinds = [e.kind for e in stored]
    assert kinds[:2] == [JOB_STATE_EVENT, JOB_STATE_EVENT] and kinds[-1] == JOB_STATE_EVENT
    assert [e.payload["state"] for e in stored if e.kind == JOB_STATE_EVENT] == [
        QUEUED, RUNNING, SUCCEEDED]
    executor = [(e["event"], e.get("index")) for e in executor_events(stored)]
    assert executor == [("hello", None), ("step_start", 0), ("step_end", 0), ("step_start", 1),
                        ("step_end", 1), ("done", None)]
    assert executor_events(stored)[0]["id"] == host.request_id


async def test_a_failing_host_fails_the_job(
    store: JobStore, local_inv: Path, templates: Path
) -> None:
    request = _request(local_inv, api.AdhocTask(("false",)), templates)
    job_id = await jobs.run_job(store, request, Inventory.load([str(local_inv)]))
    job = store.get_job(job_id)
    assert job is not None and (job.state, job.exit_code, job.kind) == (FAILED, 2, "adhoc")
    assert job.hosts[0].state == "failed" and "localhost" in (job.error or "")
    assert job.task == {"kind": "adhoc", "argv": ["false"], "shell": False, "timeout": None}
    finished = jobs.run_finished(job)
    assert finished.exit_code == 2 and finished.hosts[0].failed_steps[0]["name"] == "false"


def _everything_stored(store: JobStore) -> str:
    with store.engine.connect() as conn:
        rows = [conn.execute(select(t)).all() for t in (jobs_table, job_hosts, events)]
    return repr(rows)


async def test_secrets_are_never_stored(
    store: JobStore, db_url: str, local_inv: Path, templates: Path, tmp_path: Path
) -> None:
    target = tmp_path / "written"
    request = _request(local_inv, api.TemplateTask("secretive"), templates, token=SECRET,
                       path=str(target), comment=f"the token is {SECRET}")
    job_id = await jobs.run_job(store, request, Inventory.load([str(local_inv)]))
    assert target.read_text() == f"token={SECRET}"  # the host got the real value
    job = store.get_job(job_id)
    assert job is not None and job.state == SUCCEEDED
    assert job.vars == {"token": MASK, "path": str(target), "comment": f"the token is {MASK}"}
    shown = [e for e in executor_events(store.events(job_id)) if e["event"] == "step_end"]
    assert shown[1]["stdout"] == f"token={MASK}\n{MASK}\n"
    forms = (SECRET, base64.b64encode(SECRET.encode()).decode())
    dump = _everything_stored(store)
    assert not [f for f in forms if f in dump]
    store.close()
    if db_url.startswith("sqlite:///"):  # and not in the file's bytes either (WAL included)
        db = Path(db_url.removeprefix("sqlite:///"))
        for path in (db, db.with_name(db.name + "-wal")):
            if path.exists():
                assert not [f for f in forms if f.encode() in path.read_bytes()]


async def _until_step_started(store: JobStore, job_id: int) -> None:
    deadline = time.monotonic() + 60
    while not [e for e in executor_events(store.events(job_id)) if e["event"] == "step_start"]:
        assert time.monotonic() < deadline, "the step never started"
        await asyncio.sleep(0.1)


async def _let_the_executor_exit() -> None:
    # The local transport signals the cancelled executor but does not wait for it: give
    # it a moment to exit while this loop still runs, or asyncio warns from __del__.
    await asyncio.sleep(1.0)


async def test_cancel_job_stops_a_running_job(
    store: JobStore, local_inv: Path, templates: Path, tmp_path: Path
) -> None:
    request = _request(local_inv, api.TemplateTask("slow"), templates,
                       marker=str(tmp_path / "never"))
    job = jobs.prepare_job(store, request, Inventory.load([str(local_inv)]))
    started = time.monotonic()
    task = asyncio.create_task(jobs.execute_job(store, job))
    await _until_step_started(store, job.id)
    assert jobs.cancel_job(store, job.id)
    assert await asyncio.wait_for(task, 20) is None
    assert time.monotonic() - started < 25  # not the step's 30 s
    record = store.get_job(job.id)
    assert record is not None and record.state == CANCELLED
    assert record.hosts[0].state == "cancelled"
    assert not jobs.cancel_job(store, job.id)  # nothing left to cancel
    await _let_the_executor_exit()


async def test_cancelled_otherwise_the_job_is_left_interrupted(
    store: JobStore, local_inv: Path, templates: Path, tmp_path: Path
) -> None:
    """A server shutting down cancels its tasks: its jobs stay resumable."""
    request = _request(local_inv, api.TemplateTask("slow"), templates,
                       marker=str(tmp_path / "never"))
    job = jobs.prepare_job(store, request, Inventory.load([str(local_inv)]))
    task = asyncio.create_task(jobs.execute_job(store, job))
    await _until_step_started(store, job.id)
    STOP.mode = "detach"  # what serve's shutdown says before it cancels its jobs
    try:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        STOP.mode = "cancel"
    record = store.get_job(job.id)
    assert record is not None and record.state == INTERRUPTED
    assert record.hosts[0].state == "running"  # what resume reads the journal back for
    await _let_the_executor_exit()
