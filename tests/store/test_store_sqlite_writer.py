"""The CLI's lean SQLite writer writes what ``JobStore`` writes: same columns, pragmas,
rows; ``open_writer`` picks it only for an up-to-date SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from control_server.events import (
    ExecutorEvent,
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepCounts,
)
from control_server.store import engine as engines
from control_server.store import migrate, revision, schema
from control_server.store.jobstore import JobStore
from control_server.store.records import HOST_CANCELLED, RUNNING, SUCCEEDED, NewJob
from control_server.store.sink import RunStore
from control_server.store.sqlite_writer import (
    EVENT_COLUMNS,
    HOST_COLUMNS,
    JOB_COLUMNS,
    PRAGMAS,
    SqliteWriter,
    default_url,
    open_writer,
    sqlite_path,
)

TIMES = {"created_at", "started_at", "finished_at", "heartbeat_at", "time"}


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_the_writers_columns_are_the_schemas() -> None:
    assert tuple(c.name for c in schema.jobs.c) == JOB_COLUMNS
    assert tuple(c.name for c in schema.job_hosts.c) == HOST_COLUMNS
    assert tuple(c.name for c in schema.events.c) == EVENT_COLUMNS
    assert revision.SCHEMA_REVISION == migrate.SCHEMA_REVISION


def _pragmas(query: Callable[[str], Any]) -> list[Any]:
    return [query(f"PRAGMA {p.split('=')[0]}") for p in PRAGMAS]


def test_its_connection_has_the_engines_pragmas(tmp_path: Path) -> None:
    url = _url(tmp_path / "h.db")
    JobStore.open(url).close()
    engine = engines.make_engine(url)
    with engine.connect() as conn:
        theirs = _pragmas(lambda q: conn.execute(text(q)).scalar())
    engine.dispose()
    lean = SqliteWriter.open_current(url, str(tmp_path / "h.db"))
    assert lean is not None
    ours = _pragmas(lambda q: lean._conn.execute(q).fetchone()[0])
    lean.close()
    assert ours == theirs and theirs[0] == "wal"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "sqlite:///HOME/.local/state/hostplane/hostplane.db"),
    ({"XDG_STATE_HOME": "/x/state"}, "sqlite:////x/state/hostplane/hostplane.db"),
    ({"HOSTPLANE_DB": "postgresql://h/db"}, "postgresql://h/db"),
])
def test_its_default_url_is_the_stores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       env: dict[str, str], expected: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_STATE_HOME", "HOSTPLANE_DB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_url() == expected.replace("HOME", str(tmp_path))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///a.db?mode=ro",
                                 "sqlite:///file:a.db", "postgresql://h/db",
                                 "sqlite:///~/a.db", "sqlite:///a%20b.db"])
def test_urls_in_doubt_are_not_its(url: str) -> None:
    assert sqlite_path(url) is None


def test_plain_sqlite_urls_are_its() -> None:
    assert sqlite_path("sqlite:////tmp/x/h.db") == "/tmp/x/h.db"
    assert sqlite_path("sqlite:///rel/h.db") == "rel/h.db"


def _run(store: RunStore) -> None:
    """One CLI run's writes (a stale job found first, a second job cancelled), as the
    sink and the run's end make them; fixed event times so the payloads agree."""
    stale = store.create_job(NewJob("adhoc", "old", "all", (("h0", "r0"),), "me"),
                             start=True)
    assert isinstance(store, SqliteWriter | JobStore)
    _kill_owner(store.url, stale)
    assert store.mark_interrupted_on_startup() == [stale]
    job = store.create_job(NewJob("adhoc", "echo hi", "all", (("h1", "r1"), ("h2", "r2")),
                                  "me", limit="h*", check=True, vars={"x": "é"},
                                  task={"cmd": ["echo", "hi"]}, config={"forks": 5},
                                  inventory={"sources": ["i.ini"]}), start=True)
    t = 1000.0
    ends = [HostFinished("h1", "ok", StepCounts(ok=1), 0.5, time=t + 3),
            HostFinished("h2", "failed", StepCounts(failed=1), 0.7, error="boom",
                         error_kind="step", failed_steps=({"step": 1},), executor_rc=2,
                         uploaded=True, time=t + 4)]
    assert store.record_many(job, [RunStarted("r", "echo hi", ("h1", "h2"), True, time=t),
                                   HostStarted("h1", time=t + 1),
                                   HostStarted("h2", time=t + 1)]) == 5
    assert store.record_many(job, []) == 0
    store.record_many(job, [ExecutorEvent("h1", {"event": "step_end", "n": 1}, time=t + 2),
                            *ends, RunFinished("r", tuple(ends), 4.0, 2, time=t + 5)])
    assert store.heartbeat(job) is False
    store.set_state(job, SUCCEEDED, exit_code=0, stopped_early="why")
    queued = store.create_job(NewJob("template", "facts", "all", (("h3", None),), "me"))
    assert store.start_and_record(queued, [HostStarted("h3", time=t)]) == (3, False)
    store.set_host_state(queued, "h3", HOST_CANCELLED)
    store.set_state(queued, RUNNING)
    assert store.start_and_record(queued, []) == (0, False)
    with pytest.raises(KeyError):
        store.record_many(9999, [HostStarted("h1", time=t)])


def _kill_owner(url: str, job_id: int) -> None:  # its owner: a process long gone
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE jobs SET owner_pid = 1, owner_start = 'gone' WHERE id = ?",
                     (job_id,))


def _rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows; a time only as set or not (times differ between runs)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                         " AND name NOT LIKE 'sqlite_%'")]
    out: dict[str, list[dict[str, Any]]] = {}
    for table in sorted(tables):
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
        rows.sort(key=repr)
        out[table] = [{k: (v is not None if k in TIMES else v) for k, v in r.items()}
                      for r in rows]
    conn.close()
    return out


def test_it_writes_the_rows_jobstore_writes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with JobStore.open(_url(a)) as store:
        _run(store)
        by_jobstore = store.get_job(2)
    JobStore.open(_url(b)).close()
    lean = open_writer(_url(b))
    assert isinstance(lean, SqliteWriter)
    _run(lean)
    by_lean = lean.get_job(2)
    lean.close()
    rows = _rows(a)
    assert rows == _rows(b)
    assert len(rows["events"]) == 18
    assert rows["alembic_version"] == [{"version_num": migrate.SCHEMA_REVISION}]
    assert {h["host"]: (h["state"], h["attempts"]) for h in rows["job_hosts"]} == {
        "h0": ("pending", 0), "h1": ("ok", 1), "h2": ("failed", 1), "h3": ("cancelled", 1)}
    assert by_jobstore is not None and by_lean is not None
    assert [h.result for h in by_lean.hosts] == [h.result for h in by_jobstore.hosts]
    assert (by_lean.state, by_lean.vars, by_lean.last_seq, len(by_lean.hosts)) == \
        (by_jobstore.state, by_jobstore.vars, by_jobstore.last_seq, 2)
    assert open_writer(_url(b)).get_job(9999) is None


def test_a_missing_or_older_store_is_opened_and_migrated_by_jobstore(tmp_path: Path) -> None:
    missing = _url(tmp_path / "new" / "h.db")
    opened = open_writer(missing)
    assert isinstance(opened, JobStore)
    assert migrate.current_revision(opened.engine) == migrate.SCHEMA_REVISION
    opened.close()
    old = _url(tmp_path / "old.db")
    engine = engines.make_engine(old)
    migrate.upgrade(engine, "0002")
    engine.dispose()
    opened = open_writer(old)
    assert isinstance(opened, JobStore)
    assert migrate.current_revision(opened.engine) == migrate.SCHEMA_REVISION
    opened.close()
    assert isinstance(open_writer(old), SqliteWriter)  # now up to date
