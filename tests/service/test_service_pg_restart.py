"""PostgreSQL restarted under load (issue 10 §3): a real ``serve`` on a real PostgreSQL
runs several jobs; the database is shut down (fast: every session ended) while their
steps run, stays down a few seconds, and comes back. Every job ends ``succeeded`` with
every step's events in the store, and the server answers requests again."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import Server, create_token, free_port, start_server, write_inventory
from service_helpers import write_templates as write_service_templates

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from pg_helpers import new_database, restart_server, running_server, unavailable

from control_server.store.jobstore import JobStore

STEPS = 3  # steps3: hello, sleep, bye
SLEEP = 3  # s: the sleep step ends while the database is down
DOWN = 5.0  # s with nothing listening


def _job(client: httpx.Client, job_id: int) -> dict[str, Any] | None:
    """The job as serve shows it; None while the store cannot answer (a JSON 503)."""
    try:
        response = client.get(f"/v1/jobs/{job_id}")
    except httpx.HTTPError:
        return None
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _wait_ended(client: httpx.Client, job_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(client, job_id)
        if job is not None and job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not end: {job}"
        time.sleep(0.2)


def _wait_sleeping(db: str, jobs: dict[int, list[str]], timeout: float = 60) -> None:
    """Until every host of every job has started its sleep step (index 1)."""
    deadline = time.monotonic() + timeout
    while True:
        started = {j: _executor(db, j, "step_start") for j in jobs}
        if all(1 in started[j].get(h, []) for j, hosts in jobs.items() for h in hosts):
            return
        assert time.monotonic() < deadline, f"the jobs did not reach their sleep: {started}"
        time.sleep(0.1)


def _executor(db: str, job_id: int, kind: str) -> dict[str, list[int]]:
    """Each host's step indexes of the executor's ``kind`` events, as the store has them
    (every copy)."""
    found: dict[str, list[int]] = {}
    with JobStore.open(db) as store:
        for event in store.events(job_id):
            inner = event.payload.get("event") or {}
            if event.kind == "executor" and inner.get("event") == kind:
                found.setdefault(event.host or "", []).append(int(inner["index"]))
    return found


def _post(server: Server, token: str, target: str, seconds: int, wait: float = 0
          ) -> httpx.Response:
    with server.client(token) as client:
        return client.post("/v1/requests", params={"wait": wait} if wait else None,
                           json={"template": "steps3", "target": target,
                                 "vars": {"seconds": seconds}})


def test_jobs_running_across_a_postgresql_restart_lose_nothing(tmp_path: Path) -> None:
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL: {why}")
    inventory = write_inventory(tmp_path / "hosts.ini", free_port())
    templates = write_service_templates(tmp_path / "templates")
    with running_server() as admin:
        db = new_database(admin)
        token = create_token(db, "ops", "operator")
        server = start_server(tmp_path, inventory, db, "--templates", str(templates),
                              "--no-facts", facts=False)
        try:
            targets = ["h1", "h2", "h3", "h1:h2"]
            posted = [_post(server, token, target, SLEEP) for target in targets]
            assert [r.status_code for r in posted] == [202] * len(targets), \
                [r.text for r in posted]
            job_ids = [int(r.json()["job_id"]) for r in posted]
            _wait_sleeping(db, {j: t.split(":") for j, t in zip(job_ids, targets, strict=True)})
            with server.client(token) as client:
                restart_server(admin, down_for=DOWN)  # the sleeps end meanwhile
                ended = {j: _wait_ended(client, j, timeout=120) for j in job_ids}

            for target, job_id in zip(targets, job_ids, strict=True):
                job = ended[job_id]
                assert job["state"] == "succeeded", job
                hosts = target.split(":")
                assert sorted(h["host"] for h in job["hosts"]) == hosts
                assert all(h["state"] == "ok" for h in job["hosts"]), job
                # Every step's end once, none lost in the outage, none written twice.
                assert _executor(db, job_id, "step_end") == {h: list(range(STEPS)) for h in hosts}

            after = _post(server, token, "h3", 0, wait=30)
            assert after.status_code == 200, after.text
            assert after.json()["state"] == "succeeded", after.json()
            assert _executor(db, int(after.json()["id"]), "step_end") == {"h3": list(range(STEPS))}
            # The outage did reach the jobs' writes: they waited for the store.
            assert "the store is unavailable" in server.logs()
            assert "the store is back" in server.logs()
            assert server.proc.poll() is None
        finally:
            server.stop()
