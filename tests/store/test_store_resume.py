"""A control server killed mid-run (SIGKILL) leaves its job ``interrupted`` with every
result it had received; ``jobs resume`` reads the lost sequence's journal back from the
host and finishes the job. Real processes, the real executor, a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import SECRET, executor_events, run_cli, wait_for

from control_server import api, jobs
from control_server.errors import InputError
from control_server.events import HostStarted
from control_server.inventory import Inventory
from control_server.store.jobspec import JobRequest
from control_server.store.jobstore import JobStore
from control_server.store.records import INTERRUPTED, JOB_STATE_EVENT, RUNNING, SUCCEEDED
from control_server.store.resume import JOURNAL_EVENT, read_journal, resume_job

REPO = Path(__file__).resolve().parents[2]


def _start_run(db_url: str, inv: Path, templates: Path, marker: Path, logs: Path
               ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HOSTPLANE_DB", None)
    with (logs / "out").open("wb") as out, (logs / "err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "control_server", "run", "-i", str(inv), "all", "slow",
             "--templates", str(templates), "-e", f"marker={marker}", "--db", db_url],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=logs,
        )


def _step_started(store: JobStore) -> int | None:
    for job in store.list_jobs():
        if any(e["event"] == "step_start" for e in executor_events(store.events(job.id))):
            return job.id
    return None


def test_sigkill_mid_run_then_resume(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path, templates: Path,
    tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    proc = _start_run(sqlite_url, local_inv, templates, marker, tmp_path)
    with JobStore.open(sqlite_url) as store:
        job_id = wait_for("the sleep step to start", lambda: _step_started(store), 90)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL

        # Opening the store again: the job is interrupted, with what it had received.
        assert store.mark_interrupted_on_startup() == [job_id]
        job = store.get_job(job_id)
        assert job is not None and job.state == INTERRUPTED
        (host,) = job.hosts
        assert host.state == "running" and host.request_id
        received = executor_events(store.events(job_id))
        assert [e["event"] for e in received] == ["hello", "step_start"]
        code, out, _ = run_cli(capsys, "jobs", "show", str(job_id), "--db", sqlite_url)
        assert f"job {job_id}: interrupted" in out and "the control server running it stopped" in out
        assert "RUNNING localhost: no result: the run stopped while it ran" in out

        # The truth on the host: the executor saw its stdout close (its reader was
        # killed), detached and went on: the sleep runs to its end, journaled.
        marker.write_text("")  # were anything run twice, the marker's step would say `ok`
        inv = Inventory.load([str(local_inv)])
        journal = wait_for("the executor's journal to end", lambda: [
            e for e in _journal(inv, host.request_id or "") if e["event"] == "done"], 60)
        assert journal[0]["interrupted"] is False and "stdout closed" in journal[0]["detached"]

        code, _, err = run_cli(capsys, "jobs", "resume", str(job_id), "--db", sqlite_url)
        assert code == 0, err
        assert "localhost: journal read back: finished" in err
        assert f"job {job_id} succeeded" in err

        job = store.get_job(job_id)
        assert job is not None and job.state == SUCCEEDED and job.exit_code == 0
        (after,) = job.hosts
        assert after.state == "ok" and after.request_id == host.request_id  # not run again
        stored = store.events(job_id)
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        seen = [(e["event"], e.get("index"), e.get("status")) for e in executor_events(stored)]
        assert seen == [
            ("hello", None, None), ("step_start", 0, None),  # before the kill
            ("step_end", 0, "changed"),  # the rest read back from the journal, run once
            ("step_start", 1, None), ("step_end", 1, "changed"), ("done", None, "changed"),
        ]
        notes = [e.payload for e in stored if e.kind == JOURNAL_EVENT]
        assert notes and notes[0]["verdict"].startswith("finished")
        states = [e.payload["state"] for e in stored if e.kind == JOB_STATE_EVENT]
        assert states == ["queued", "running", "interrupted", "running", "succeeded"]


def _journal(inv: Inventory, request_id: str) -> list[dict[str, object]]:
    import asyncio

    return asyncio.run(api.fetch_journal(inv.host("localhost"), request_id))


async def test_a_sequence_that_ended_while_the_server_was_down_is_read_back(
    store: JobStore, tmp_path: Path, templates: Path
) -> None:
    """The executor finished after the control server died: resume records its journal's
    events and result without running it again, and runs the host never started."""
    inv_path = tmp_path / "two.ini"
    inv_path.write_text("[here]\nlocalhost ansible_connection=local\n"
                        "second ansible_connection=local\n")
    inv = Inventory.load([str(inv_path)])
    request = JobRequest("all", api.TemplateTask("two_steps"), {},
                         api.RunConfig(templates_dirs=(templates,)), (str(inv_path),))
    job = jobs.prepare_job(store, request, inv)
    store.set_state(job.id, RUNNING)
    first = job.plans[0]
    store.record(job.id, HostStarted(first.host))
    # The sequence runs with nobody recording it: only the host's journal keeps it.
    outcome = await first.delivery.run(first.transport, first.request, lambda _e: None)
    assert outcome.exit_status == 0
    store.set_state(job.id, INTERRUPTED, error="killed")

    result = await resume_job(store, job.id)
    assert result.read_back == {"localhost": "finished"}
    assert result.rerun == ["second"]
    record = store.get_job(job.id)
    assert record is not None and record.state == SUCCEEDED
    assert [(h.host, h.state, h.attempts) for h in record.hosts] == [
        ("localhost", "ok", 1), ("second", "ok", 1)]
    assert record.hosts[0].result and record.hosts[0].result["counts"]["changed"] == 2
    read_back = [e["event"] for e in executor_events(store.events(job.id), "localhost")]
    assert read_back == ["hello", "step_start", "step_end", "step_start", "step_end", "done"]


async def test_resume_asks_again_for_secrets(
    store: JobStore, local_inv: Path, templates: Path, tmp_path: Path
) -> None:
    target = tmp_path / "written"
    request = JobRequest("all", api.TemplateTask("secretive"),
                         {"token": SECRET, "path": str(target)},
                         api.RunConfig(templates_dirs=(templates,)), (str(local_inv),))
    job = jobs.prepare_job(store, request, Inventory.load([str(local_inv)]))
    store.set_state(job.id, INTERRUPTED, error="killed before it began")
    with pytest.raises(InputError, match="token were not stored; give them again: -e token="):
        await resume_job(store, job.id)
    result = await resume_job(store, job.id, {"token": SECRET})
    assert result.job.state == SUCCEEDED and result.rerun == ["localhost"]
    assert target.read_text() == f"token={SECRET}"


def test_jobs_cancel_stops_a_cli_run_in_another_process(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path, templates: Path,
    tmp_path: Path
) -> None:
    proc = _start_run(sqlite_url, local_inv, templates, tmp_path / "never", tmp_path)
    with JobStore.open(sqlite_url) as store:
        job_id = wait_for("the sleep step to start", lambda: _step_started(store), 90)
        code, _, err = run_cli(capsys, "jobs", "cancel", str(job_id), "--db", sqlite_url)
        assert code == 0 and "cancel requested" in err
        # Seen at the run's next heartbeat; it stops as on Ctrl-C.
        assert proc.wait(30) == 130
        job = store.get_job(job_id)
        assert job is not None and job.state == "cancelled"
        assert job.hosts[0].state == "cancelled"


def test_events_follow_prints_a_live_job_until_its_server_dies(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path, templates: Path,
    tmp_path: Path
) -> None:
    import threading

    proc = _start_run(sqlite_url, local_inv, templates, tmp_path / "never", tmp_path)
    with JobStore.open(sqlite_url) as store:
        job_id = wait_for("the sleep step to start", lambda: _step_started(store), 90)
    killer = threading.Timer(1.0, os.kill, (proc.pid, signal.SIGKILL))
    killer.start()
    try:
        code, out, _ = run_cli(capsys, "jobs", "events", str(job_id), "--follow", "--db",
                               sqlite_url)
    finally:
        killer.join()
        proc.wait(30)
    lines = out.splitlines()
    assert code == 0 and "step_start 1: wait a while" in out
    assert "job interrupted: the control server running it stopped" in lines[-1]


async def test_a_sequence_still_running_on_the_host_is_left_alone(
    store: JobStore, local_inv: Path, templates: Path, tmp_path: Path
) -> None:
    """The executor outlived its control server (its stdout is not ours here): resume
    leaves that host be and the job interrupted; once the sequence ends, resume again."""
    import asyncio
    import json

    marker = tmp_path / "marker"
    request = JobRequest("all", api.TemplateTask("slow"), {"marker": str(marker)},
                         api.RunConfig(templates_dirs=(templates,)), (str(local_inv),))
    inv = Inventory.load([str(local_inv)])
    job = jobs.prepare_job(store, request, inv)
    store.set_state(job.id, RUNNING)
    plan = job.plans[0]
    store.record(job.id, HostStarted(plan.host))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HOSTPLANE_CACHE_DIR", None)  # journal where the launcher keeps it (~/.cache)
    with (tmp_path / "executor.out").open("wb") as out:
        executor = subprocess.Popen([sys.executable, "-m", "host_executor"],
                                    stdin=subprocess.PIPE, stdout=out, env=env)
    assert executor.stdin is not None
    executor.stdin.write(json.dumps(plan.request).encode())
    executor.stdin.close()
    rid = str(plan.request["id"])
    try:
        for _ in range(600):
            journal = (await read_journal(plan, rid, 0)).events  # uploads if need be
            if any(e["event"] == "step_start" for e in journal):
                break
            assert executor.poll() is None, (tmp_path / "executor.out").read_text()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the executor never started its step: {journal}")
        store.set_state(job.id, INTERRUPTED, error="killed")

        first = await resume_job(store, job.id, journal_wait=0.5)
        assert first.still_running == ["localhost"] and first.rerun == [], first.read_back
        assert first.job.state == INTERRUPTED and "still running on localhost" in (
            first.job.error or "")
        assert first.job.hosts[0].request_id == rid  # read again next time
    finally:
        executor.send_signal(signal.SIGTERM)
        executor.wait(30)

    marker.write_text("")
    second = await resume_job(store, job.id)
    assert second.read_back["localhost"].startswith("interrupted (SIGTERM received)")
    assert second.rerun == ["localhost"] and second.job.state == SUCCEEDED
    events = executor_events(store.events(job.id))
    assert [e["event"] for e in events].count("hello") == 2  # each journal event once
