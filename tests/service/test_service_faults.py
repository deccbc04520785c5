"""Faults on the request path answer JSON naming what failed, never a bare 500: the job
store kept locked by another connection past serve's (shortened) busy timeout is a 503
saying the job did not start, logged with its traceback, and leaves no job behind; a
job running meanwhile still gets its end state."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from service_helpers import (
    Server,
    create_token,
    free_port,
    start_server,
    wait_for_job,
    write_inventory,
    write_templates,
)

BUSY_MS = "300"


@contextmanager
def store_locked(db_file: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection (another process would do the
    same), so serve's writes wait out their busy timeout."""
    conn = sqlite3.connect(db_file, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def busy_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[tuple[Server, str, Path]]:
    monkeypatch.setenv("HOSTPLANE_SQLITE_BUSY_TIMEOUT_MS", BUSY_MS)
    db_file = tmp_path / "hostplane.db"
    db = f"sqlite:///{db_file}"
    token = create_token(db, "ops", "operator")
    templates = write_templates(tmp_path / "templates")
    inventory = write_inventory(tmp_path / "hosts.ini", free_port())
    server = start_server(tmp_path, inventory, db, "--templates", str(templates),
                          "--no-facts", "--no-watch", facts=False)
    try:
        yield server, token, db_file
    finally:
        server.stop()


def test_a_locked_store_is_a_503_naming_the_request(
        busy_server: tuple[Server, str, Path]) -> None:
    server, token, db_file = busy_server
    body = {"template": "steps3", "target": "h1"}
    with server.client(token) as client:
        # Once first: the token's last use is recorded (a write) on its first request.
        assert client.post("/v1/requests", json=body, params={"wait": 60}).status_code == 200
        before = client.get("/v1/jobs").json()["jobs"]
        with store_locked(db_file):
            response = client.post("/v1/requests", json=body, params={"wait": 60})
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        failure = response.json()
        assert "database is locked" in failure["detail"], failure
        assert "steps3" in failure["detail"] and "'h1'" in failure["detail"], failure
        assert "did not start" in failure["detail"] and failure["job_id"] is None
        assert "Traceback" not in response.text
        assert client.get("/v1/jobs").json()["jobs"] == before  # no job half made
        again = client.post("/v1/requests", json=body, params={"wait": 60})
        assert again.status_code == 200 and again.json()["state"] == "succeeded", again.text
    log = server.logs()
    assert "the job store is busy or unavailable" in log and "Traceback" in log, log[-3000:]



def test_a_store_locked_while_a_job_runs_leaves_it_in_an_end_state(
        busy_server: tuple[Server, str, Path]) -> None:
    """Its events written meanwhile are lost (the run goes on), and setting its end state
    is retried until the store answers: the job ends (failed for want of the host's result
    when that was lost), never left running."""
    server, token, db_file = busy_server
    with server.client(token) as client:
        response = client.post("/v1/requests", json={"template": "steps3", "target": "h1",
                                                     "vars": {"seconds": 1}})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        with store_locked(db_file):
            time.sleep(4)  # the job's writes meanwhile fail (usually its end state too)
        job = wait_for_job(client, job_id, ("succeeded", "failed", "interrupted"))
    assert job["state"] in ("succeeded", "failed"), job
    if job["state"] == "failed":
        assert job["error"] == "no result for h1", job
