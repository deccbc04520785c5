"""``serve`` killed with SIGKILL mid-job: the restarted server reports the job
``interrupted`` with the events it had, and ``hostplane jobs resume`` completes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service_helpers import (
    cli,
    create_token,
    free_port,
    sse_events,
    start_server,
    wait_for_job,
    wait_for_step,
    write_inventory,
    write_templates,
)


def test_sigkill_mid_job_leaves_it_interrupted_and_resume_completes_it(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "hosts.ini", free_port())
    templates = write_templates(tmp_path / "templates")
    db = f"sqlite:///{tmp_path / 'hostplane.db'}"
    token = create_token(db, "ops", "operator")
    args = ("--templates", str(templates), "--no-facts")
    server = start_server(tmp_path, inventory, db, *args, facts=False)
    try:
        with server.client(token) as client:
            response = client.post("/v1/requests", json={
                "template": "steps3", "target": "h1:h2", "vars": {"seconds": 3}})
            job_id = response.json()["job_id"]
            wait_for_step(client, job_id, "h1", 1)  # hello is done, sleep runs
        server.kill()
    finally:
        server.stop()

    restarted = start_server(tmp_path, inventory, db, *args, facts=False)
    try:
        with restarted.client(token) as client:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] == "interrupted", job
            assert "stopped" in job["error"]
            h1 = next(h for h in job["hosts"] if h["host"] == "h1")
            assert h1["state"] == "running"  # no result: the journal on the host has it
            assert h1["steps"][0]["name"] == "hello" and h1["steps"][0]["stdout"] == "hello\n"

            resumed = cli("jobs", "resume", str(job_id), "--db", db)
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr

            done = wait_for_job(client, job_id, ("succeeded",), timeout=10)
            assert done["state"] == "succeeded", done
            assert all(h["state"] == "ok" for h in done["hosts"])
            text = client.get(f"/v1/jobs/{job_id}/events").text
            states = [e["data"]["payload"]["state"] for e in sse_events(iter(text.split("\n")))
                      if e["event"] == "job_state"]
            assert states[0] == "queued" and states[-1] == "succeeded"
            assert states.index("interrupted") < states.index("succeeded")

            # SIGTERM (with --drain 0): the running job is left interrupted, not cancelled.
            second = client.post("/v1/requests", json={
                "template": "steps3", "target": "h3", "vars": {"seconds": 30}}).json()
            wait_for_step(client, second["job_id"], "h3", 1)
        restarted.stop()
        assert "Application shutdown complete" in restarted.logs()
        with sqlite3.connect(tmp_path / "hostplane.db") as conn:
            [(state,)] = conn.execute("SELECT state FROM jobs WHERE id = ?",
                                      (second["job_id"],)).fetchall()
        assert state == "interrupted"
    finally:
        restarted.stop()
