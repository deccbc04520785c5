"""A recorded ``exec`` on an up-to-date SQLite store never imports SQLAlchemy (issue 9),
and the job it writes reads back like any other; a new store goes through ``JobStore``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import run_cli

from control_server.store import migrate
from control_server.store.jobstore import JobStore

_MAIN = ("import sys\nfrom control_server.cli import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
         "import json\nprint(json.dumps([code, sorted(sys.modules)]), file=sys.__stderr__)")


def _exec(url: str, inv: Path, *command: str) -> tuple[int, str, set[str]]:
    """``hostplane exec --json`` in a process of its own: (exit code, stdout, modules)."""
    done = subprocess.run([sys.executable, "-c", _MAIN, "exec", "-i", str(inv), "all",
                           "--db", url, "--json", "--", *command],
                          capture_output=True, text=True, check=True, timeout=120)
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    return code, done.stdout, set(modules)


def test_exec_on_a_current_store_records_without_sqlalchemy(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, local_inv: Path
) -> None:
    code, _, modules = _exec(sqlite_url, local_inv, "true")  # no file yet: JobStore makes it
    assert code == 0 and "sqlalchemy" in modules
    code, out, modules = _exec(sqlite_url, local_inv, "echo", "lean one")
    assert code == 0 and "lean one" in out
    assert [m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic")] == []
    assert "control_server.store.sqlite_writer" in modules

    code, out, _ = run_cli(capsys, "jobs", "show", "2", "--db", sqlite_url, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["state"] == "succeeded" and shown["exit_code"] == 0
    assert [(h["host"], h["state"], h["result"]["status"]) for h in shown["hosts"]] == \
        [("localhost", "ok", "ok")]
    with JobStore.open(sqlite_url) as store:
        kinds = [e.kind for e in store.events(2)]
        job = store.get_job(2)
    assert kinds[:4] == ["job_state", "job_state", "run_start", "host_start"]
    assert kinds[-3:] == ["host_end", "run_end", "job_state"] and "executor" in kinds
    assert job is not None and job.last_seq == len(kinds) and job.owner_pid is not None


def test_exec_on_an_older_store_migrates_it(sqlite_url: str, local_inv: Path) -> None:
    from control_server.store.engine import make_engine

    engine = make_engine(sqlite_url)
    migrate.upgrade(engine, "0002")
    engine.dispose()
    code, _, modules = _exec(sqlite_url, local_inv, "true")
    assert code == 0 and "sqlalchemy" in modules
    with JobStore.open(sqlite_url, migrate=False) as store:
        assert migrate.current_revision(store.engine) == migrate.SCHEMA_REVISION
        job = store.get_job(1)
    assert job is not None and job.state == "succeeded"
