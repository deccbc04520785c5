"""The CLI's lean job writer: a run recorded in a SQLite store through ``sqlite3`` alone.

Importing SQLAlchemy costs a CLI run about as much CPU as recording everything it does
(issue 9), so ``open_writer`` hands a run this writer when the store is a SQLite file that
exists and whose schema is already at ``SCHEMA_REVISION``: nothing to create or migrate.
Anything else (no file yet, an older schema, PostgreSQL, a URL with options) opens
``JobStore``, which creates and migrates the store as before.

It writes what ``JobStore`` writes, statement for statement (tests compare the rows of
both, and its column lists with ``schema``): one ``BEGIN IMMEDIATE`` transaction per call,
the connection set up with ``store.engine``'s pragmas, JSON as ``store.rows.dumps`` makes it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from control_server.events import HostFinished, HostStarted, RunEvent, event_to_dict
from control_server.store import owner as owners
from control_server.store.records import (
    ACTIVE_STATES,
    FINAL_STATES,
    HOST_PENDING,
    HOST_RUNNING,
    INTERRUPTED,
    JOB_STATE_EVENT,
    JOB_STATES,
    QUEUED,
    RUNNING,
    JobRecord,
    NewJob,
)
from control_server.store.revision import SCHEMA_REVISION
from control_server.store.rows import default_url, dumps, host_record, job_record, me

if TYPE_CHECKING:
    from control_server.store.sink import RunStore

# As store.engine sets them on every SQLite connection (a test compares the two).
BUSY_TIMEOUT_MS = 30_000
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}",
           "foreign_keys=ON")

# The columns this writer reads and writes, by table (a test checks them against schema).
JOB_COLUMNS = (
    "id", "kind", "what", "pattern", "limit_pattern", "check_mode", "vars", "task", "config",
    "inventory", "who", "state", "created_at", "started_at", "finished_at", "exit_code",
    "error", "stopped_early", "owner_host", "owner_pid", "owner_boot", "owner_start",
    "heartbeat_at", "cancel_requested", "last_seq",
)
HOST_COLUMNS = ("job_id", "host", "position", "request_id", "state", "started_at",
                "finished_at", "result", "attempts")
EVENT_COLUMNS = ("job_id", "seq", "host", "kind", "payload", "time")
# What create_job inserts (the rest keep their NULL), as JobStore.create_job does.
NEW_JOB_COLUMNS = tuple(c for c in JOB_COLUMNS if c not in
                        ("id", "finished_at", "exit_code", "error", "stopped_early"))
NEW_HOST_COLUMNS = ("job_id", "host", "position", "request_id", "state", "attempts")


def _insert(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})")


_INSERT_JOB = _insert("jobs", NEW_JOB_COLUMNS)
_INSERT_HOST = _insert("job_hosts", NEW_HOST_COLUMNS)
_INSERT_EVENT = _insert("events", EVENT_COLUMNS)
_BUMP_SEQ = ("UPDATE jobs SET last_seq = last_seq + :n, heartbeat_at = :now WHERE id = :job "
             "RETURNING last_seq")
_HOST_STARTED = ("UPDATE job_hosts SET state = :s, started_at = :t, finished_at = NULL, "
                 "result = NULL, attempts = attempts + 1 WHERE job_id = :job AND host = :h")
_HOST_FINISHED = ("UPDATE job_hosts SET state = :s, finished_at = :t, result = :r "
                  "WHERE job_id = :job AND host = :h")
_CANCEL_FLAG = "SELECT cancel_requested FROM jobs WHERE id = :job"
_START = ("UPDATE jobs SET state = :s, error = NULL, finished_at = NULL, heartbeat_at = :now, "
          "started_at = coalesce(started_at, :now) WHERE id = :job")
_ACTIVE = ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATES))
_RUNNING_NOTE = {"state": RUNNING, "error": None, "exit_code": None}  # as set_state's
_Note = tuple[str | None, str, dict[str, Any], float]

def sqlite_path(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for anything else or in doubt
    (memory, ``file:`` URIs, query options, quoting): those go through SQLAlchemy."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix):]
            break
    else:
        return None
    if not path or path == ":memory:" or path.startswith(("file:", "~")) or \
            any(c in path for c in "?#%@"):
        return None
    return path


def open_writer(url: str | None = None) -> RunStore:
    """The store a CLI run records into: the lean writer when the SQLite file at ``url``
    is up to date, else ``JobStore.open`` (creating or migrating it)."""
    resolved = url or default_url()
    path = sqlite_path(resolved)
    lean = SqliteWriter.open_current(resolved, path) if path else None
    if lean is not None:
        return lean
    from control_server.store.jobstore import JobStore

    return JobStore.open(resolved)


class SqliteWriter:
    """``JobStore``'s writes of a CLI run (and the reads they need), on ``sqlite3``."""

    def __init__(self, conn: sqlite3.Connection, url: str) -> None:
        self._conn = conn
        self.url = url
        # The writer thread and the main thread (the run's end, the exit hook) share the
        # connection: one transaction at a time, as JobStore's one-writer lock.
        self._lock = threading.RLock()

    @classmethod
    def open_current(cls, url: str, path: str) -> SqliteWriter | None:
        """The writer on ``path`` if it is a store at ``SCHEMA_REVISION``; None if not."""
        if not os.path.isfile(path):
            return None
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        try:
            for pragma in PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None  # not a store, or no alembic_version yet: JobStore says or migrates
        if row is None or row[0] != SCHEMA_REVISION:
            conn.close()
            return None
        return cls(conn, url)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute(begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- writing (as JobStore) --------------------------------------------------------

    def create_job(self, job: NewJob, state: str = QUEUED, *, start: bool = False) -> int:
        owner = me()
        now = time.time()
        row = {
            "kind": job.kind, "what": job.what, "pattern": job.pattern,
            "limit_pattern": job.limit, "check_mode": job.check, "vars": dumps(job.vars),
            "task": dumps(job.task), "config": dumps(job.config),
            "inventory": dumps(job.inventory), "who": job.who, "state": state,
            "created_at": now, "started_at": now if state == RUNNING else None,
            "owner_host": owner.host, "owner_pid": owner.pid, "owner_boot": owner.boot,
            "owner_start": owner.start, "heartbeat_at": now, "cancel_requested": False,
            "last_seq": 0,
        }
        with self._tx() as conn:
            job_id = conn.execute(_INSERT_JOB, row).lastrowid
            if job_id is None:
                raise RuntimeError("job store: the new job has no id")
            conn.executemany(_INSERT_HOST, [
                {"job_id": job_id, "host": host, "position": i, "request_id": rid,
                 "state": HOST_PENDING, "attempts": 0}
                for i, (host, rid) in enumerate(job.hosts)
            ])
            notes: list[_Note] = [(None, JOB_STATE_EVENT, {"state": state}, now)]
            if start and state == QUEUED:
                conn.execute(_START, {"job": job_id, "now": now, "s": RUNNING})
                notes.append((None, JOB_STATE_EVENT, _RUNNING_NOTE, now))
            _append_many(conn, job_id, notes)
        return int(job_id)

    def record_many(self, job_id: int, batch: list[RunEvent]) -> int:
        if not batch:
            return 0
        with self._tx() as conn:
            return _record(conn, job_id, batch)

    def start_and_record(self, job_id: int, batch: list[RunEvent]) -> tuple[int, bool]:
        with self._tx() as conn:
            cancel = _start(conn, job_id)
            return (_record(conn, job_id, batch) if batch else 0), cancel

    def set_state(self, job_id: int, state: str, *, error: str | None = None,
                  exit_code: int | None = None, stopped_early: str | None = None) -> float:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        now = time.time()
        sets = ["state = :state", "error = :error"]
        if state == RUNNING:
            sets += ["started_at = coalesce(started_at, :now)", "finished_at = NULL"]
        if state in FINAL_STATES or state == INTERRUPTED:
            sets += ["finished_at = :now", "exit_code = :exit_code",
                     "stopped_early = :stopped_early"]
        values = {"state": state, "error": error, "now": now, "exit_code": exit_code,
                  "stopped_early": stopped_early, "job": job_id}
        note: dict[str, Any] = {"state": state, "error": error, "exit_code": exit_code}
        with self._tx() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = :job", values)
            _append_many(conn, job_id, [(None, JOB_STATE_EVENT, note, now)])
        return now

    def set_host_state(self, job_id: int, host: str, state: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE job_hosts SET state = ?, finished_at = ? "
                         "WHERE job_id = ? AND host = ?", (state, time.time(), job_id, host))

    def heartbeat(self, job_id: int) -> bool:
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", (time.time(), job_id))
            flag = conn.execute(_CANCEL_FLAG, {"job": job_id}).fetchone()
            return bool(flag and flag[0])

    def mark_interrupted_on_startup(self) -> list[int]:
        """As ``JobStore.mark_interrupted_on_startup``: active jobs whose owner is gone."""
        now = time.time()
        with self._tx("BEGIN") as conn:
            rows = conn.execute(
                "SELECT id, owner_host, owner_pid, owner_boot, owner_start, heartbeat_at "
                f"FROM jobs WHERE state IN ({_ACTIVE})").fetchall()
        gone: list[int] = []
        for job_id, host, pid, boot, start, beat in rows:
            who = owners.Owner(host or "", pid or 0, boot or "", start or "")
            if not owners.is_alive(who, beat, now):
                why = f"the control server running it stopped (pid {who.pid} on {who.host})"
                if self._interrupt(int(job_id), why):
                    gone.append(int(job_id))
        return gone

    def _interrupt(self, job_id: int, why: str) -> bool:
        now = time.time()
        with self._tx() as conn:
            done = conn.execute(
                "UPDATE jobs SET state = :s, error = :why, finished_at = :now "
                f"WHERE id = :job AND state IN ({_ACTIVE})",
                {"s": INTERRUPTED, "why": why, "now": now, "job": job_id})
            if not done.rowcount:
                return False
            note = {"state": INTERRUPTED, "error": why, "exit_code": None}
            _append_many(conn, job_id, [(None, JOB_STATE_EVENT, note, now)])
            return True

    # --- reading (what finishing a run needs) -----------------------------------------

    def get_job(self, job_id: int) -> JobRecord | None:
        with self._tx("BEGIN") as conn:
            row = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?",
                               (job_id,)).fetchone()
            if row is None:
                return None
            hosts = conn.execute(f"SELECT {', '.join(HOST_COLUMNS)} FROM job_hosts "
                                 "WHERE job_id = ? ORDER BY position", (job_id,)).fetchall()
        return job_record(dict(zip(JOB_COLUMNS, row, strict=True)),
                    tuple(host_record(dict(zip(HOST_COLUMNS, h, strict=True))) for h in hosts))


def _append_many(conn: sqlite3.Connection, job_id: int, rows: list[_Note]) -> int:
    """Insert events with the next seqs (one counter bump for all); the last seq."""
    bumped = conn.execute(_BUMP_SEQ, {"job": job_id, "n": len(rows), "now": time.time()})
    last = bumped.fetchone()
    bumped.fetchall()  # RETURNING: the statement completes once its rows are read
    if last is None:
        raise KeyError(f"no job {job_id}")
    first = int(last[0]) - len(rows) + 1
    conn.executemany(_INSERT_EVENT, [
        {"job_id": job_id, "seq": first + i, "host": host, "kind": kind,
         "payload": dumps(payload), "time": when}
        for i, (host, kind, payload, when) in enumerate(rows)
    ])
    return int(last[0])


def _record(conn: sqlite3.Connection, job_id: int, batch: list[RunEvent]) -> int:
    rows: list[_Note] = []
    for event in batch:
        payload = event_to_dict(event)
        host = payload.get("host")
        rows.append((host if isinstance(host, str) else None, event.kind, payload, event.time))
    seq = _append_many(conn, job_id, rows)
    for event, row in zip(batch, rows, strict=True):
        if isinstance(event, HostStarted):
            conn.execute(_HOST_STARTED, {"job": job_id, "h": event.host, "t": event.time,
                                         "s": HOST_RUNNING})
        elif isinstance(event, HostFinished):
            conn.execute(_HOST_FINISHED, {"job": job_id, "h": event.host, "s": event.status,
                                          "t": event.time, "r": dumps(row[2])})
    return seq


def _start(conn: sqlite3.Connection, job_id: int) -> bool:
    flag = conn.execute(_CANCEL_FLAG, {"job": job_id}).fetchone()
    if flag is None:
        raise KeyError(f"no job {job_id}")
    if flag[0]:
        return True
    now = time.time()
    conn.execute(_START, {"job": job_id, "now": now, "s": RUNNING})
    _append_many(conn, job_id, [(None, JOB_STATE_EVENT, _RUNNING_NOTE, now)])
    return False
