"""``run``/``exec`` record jobs; ``jobs list|show|events|cancel`` read them (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import run_cli

from control_server.store.jobstore import JobStore


def test_exec_records_a_job_that_jobs_commands_show(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path
) -> None:
    code, out, err = run_cli(capsys, "exec", "-i", str(local_inv), "all", "--db", sqlite_url,
                             "--", "echo", "hello there")
    assert code == 0 and "hello there" in out
    assert "job 1 succeeded" in err
    code, _, err = run_cli(capsys, "exec", "-i", str(local_inv), "all", "--db", sqlite_url,
                           "--", "false")
    assert code == 2 and "job 2 failed" in err

    code, out, _ = run_cli(capsys, "jobs", "list", "--db", sqlite_url)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["ID", "STATE"]
    assert lines[1].split()[:2] == ["2", "failed"] and lines[2].split()[:2] == ["1", "succeeded"]
    assert "echo 'hello there'" in lines[2]
    code, out, _ = run_cli(capsys, "jobs", "list", "--db", sqlite_url, "--state", "failed",
                           "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [2]

    code, out, _ = run_cli(capsys, "jobs", "show", "1", "--db", sqlite_url)
    assert code == 0 and "job 1: succeeded" in out and "Recap" in out
    assert "localhost" in out and "ok" in out
    code, out, _ = run_cli(capsys, "jobs", "show", "2", "--db", sqlite_url)
    assert "FAILED localhost step 1 'false'" in out and "why:     not ok: localhost" in out
    code, out, _ = run_cli(capsys, "jobs", "show", "2", "--db", sqlite_url, "--json")
    shown = json.loads(out)
    assert shown["state"] == "failed" and shown["hosts"][0]["result"]["status"] == "failed"


def test_jobs_events_prints_every_event_in_order(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path
) -> None:
    run_cli(capsys, "exec", "-i", str(local_inv), "all", "--db", sqlite_url, "--", "true")
    code, out, _ = run_cli(capsys, "jobs", "events", "1", "--db", sqlite_url)
    assert code == 0
    words = [line.split()[3] for line in out.splitlines()]
    assert words == ["job", "job", "run_start", "host_start", "hello", "step_start", "step_end",
                     "done", "host_end", "run_end", "job"]
    # --follow on an ended job prints the same and returns; --after skips, --json has seqs.
    code, followed, _ = run_cli(capsys, "jobs", "events", "1", "--follow", "--db", sqlite_url)
    assert code == 0 and followed == out
    code, out, _ = run_cli(capsys, "jobs", "events", "1", "--after", "8", "--json",
                           "--db", sqlite_url)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [9, 10, 11]


def test_no_record_and_the_env_var(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTPLANE_DB", sqlite_url)
    code, _, err = run_cli(capsys, "exec", "-i", str(local_inv), "all", "--no-record", "--",
                           "true")
    assert code == 0 and "job" not in err
    code, _, err = run_cli(capsys, "exec", "-i", str(local_inv), "all", "--", "true")
    assert code == 0 and "job 1 succeeded" in err
    with JobStore.open(sqlite_url) as store:
        assert [j.id for j in store.list_jobs()] == [1]


def test_a_store_that_cannot_be_opened_never_fails_the_run(
    capsys: pytest.CaptureFixture[str], local_inv: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "exec", "-i", str(local_inv), "all", "--db",
                           f"sqlite:///{blocker}/under/a/file.db", "--", "true")
    assert code == 0 and "this run is not recorded" in err


def test_errors_name_the_job(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path
) -> None:
    code, _, err = run_cli(capsys, "jobs", "show", "42", "--db", sqlite_url)
    assert code == 1 and "no job 42" in err and "Traceback" not in err
    run_cli(capsys, "exec", "-i", str(local_inv), "all", "--db", sqlite_url, "--", "true")
    code, _, err = run_cli(capsys, "jobs", "resume", "1", "--db", sqlite_url)
    assert code == 1 and "job 1 is succeeded: only an interrupted job can be resumed" in err
    code, _, err = run_cli(capsys, "jobs", "cancel", "1", "--db", sqlite_url)
    assert code == 1 and "nothing to cancel" in err
