"""The job store: every run is a job, recorded as it happens.

    store = JobStore.open()                      # $HOSTPLANE_DB or the SQLite default
    job_id = store.create_job(NewJob(...))
    store.set_state(job_id, RUNNING)
    seq = store.record(job_id, event)            # one committed transaction per event
    for ev in store.events(job_id, after_seq=seq): ...

Each ``record`` is its own transaction, committed before it returns: whatever the control
server had received is on disk if it is killed the next instant. An event's ``seq`` comes
from the job row's counter, bumped in the same transaction that inserts the event, so seqs
are dense and commit in order per job even with several writers (the row lock serializes
them): a reader that has seen seq N never later finds a new event below N.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from control_server.events import HostFinished, HostStarted, RunEvent, event_to_dict
from control_server.store import owner as owners
from control_server.store.engine import WRITE, make_engine
from control_server.store.migrate import upgrade
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
    EventRecord,
    JobRecord,
    NewJob,
)
from control_server.store.rows import default_url, dumps, host_record, job_record, loads, me
from control_server.store.schema import events, job_hosts, jobs

# Statements built once: building a statement costs more than running it (per event).
_BUMP_SEQ = (
    update(jobs).where(jobs.c.id == bindparam("job"))
    .values(last_seq=jobs.c.last_seq + bindparam("n"), heartbeat_at=bindparam("now"))
    .returning(jobs.c.last_seq)
)
_INSERT_EVENT = insert(events)
_HOST_STARTED = (
    update(job_hosts)
    .where(job_hosts.c.job_id == bindparam("job"), job_hosts.c.host == bindparam("h"))
    .values(state=HOST_RUNNING, started_at=bindparam("t"), finished_at=None, result=None,
            attempts=job_hosts.c.attempts + 1)
)
_INSERT_JOB = insert(jobs).returning(jobs.c.id)
_INSERT_HOST = insert(job_hosts)
_CANCEL_FLAG = select(jobs.c.cancel_requested).where(jobs.c.id == bindparam("job"))
_START = (
    update(jobs).where(jobs.c.id == bindparam("job"))
    .values(state=RUNNING, error=None, finished_at=None, heartbeat_at=bindparam("now"),
            started_at=func.coalesce(jobs.c.started_at, bindparam("now")))
)
_RUNNING_NOTE = {"state": RUNNING, "error": None, "exit_code": None}  # as set_state's
_HOST_FINISHED = (
    update(job_hosts)
    .where(job_hosts.c.job_id == bindparam("job"), job_hosts.c.host == bindparam("h"))
    .values(state=bindparam("s"), finished_at=bindparam("t"), result=bindparam("r"))
)


class JobStore:
    """Typed access to the jobs, their hosts and their events (one per process is enough)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        # SQLite has one writer at a time: this process's writers (serve runs a writer
        # thread per job) queue here, woken as soon as the last commits, instead of in
        # SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries.
        self._one_writer = threading.RLock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, url: str | None = None, migrate: bool = True) -> JobStore:
        """Open (creating and migrating as needed) the database at ``url``."""
        engine = make_engine(url or default_url())
        if migrate:
            upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with (self._one_writer or nullcontext()), \
                self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            yield conn

    # --- writing ------------------------------------------------------------------------

    def create_job(self, job: NewJob, state: str = QUEUED, *, start: bool = False) -> int:
        """Insert the job and its hosts; ``start``: a queued job set running at once, in
        the same transaction (both ``job_state`` events: a CLI run's job)."""
        owner = me()
        now = time.time()
        with self._write() as conn:
            job_id = conn.execute(
                _INSERT_JOB,
                {
                    "kind": job.kind, "what": job.what, "pattern": job.pattern,
                    "limit_pattern": job.limit, "check_mode": job.check,
                    "vars": dumps(job.vars), "task": dumps(job.task),
                    "config": dumps(job.config), "inventory": dumps(job.inventory),
                    "who": job.who, "state": state, "created_at": now,
                    "started_at": now if state == RUNNING else None,
                    "owner_host": owner.host, "owner_pid": owner.pid, "owner_boot": owner.boot,
                    "owner_start": owner.start, "heartbeat_at": now,
                    "cancel_requested": False, "last_seq": 0,
                },
            ).scalar_one()
            if job.hosts:
                conn.execute(_INSERT_HOST, [
                    {"job_id": job_id, "host": host, "position": i, "request_id": rid,
                     "state": HOST_PENDING, "attempts": 0}
                    for i, (host, rid) in enumerate(job.hosts)
                ])
            notes: list[tuple[str | None, str, dict[str, Any], float]] = [
                (None, JOB_STATE_EVENT, {"state": state}, now)]
            if start and state == QUEUED:
                conn.execute(_START, {"job": job_id, "now": now})
                notes.append((None, JOB_STATE_EVENT, _RUNNING_NOTE, now))
            self._append_many(conn, job_id, notes)
        return int(job_id)

    def _append(self, conn: Connection, job_id: int, host: str | None, kind: str,
                payload: dict[str, Any], when: float) -> int:
        return self._append_many(conn, job_id, [(host, kind, payload, when)])

    def _append_many(self, conn: Connection, job_id: int,
                     rows: list[tuple[str | None, str, dict[str, Any], float]]) -> int:
        """Insert events with the next seqs (one counter bump for all); the last seq."""
        last = conn.execute(_BUMP_SEQ, {"job": job_id, "n": len(rows), "now": time.time()})
        seq = last.scalar_one_or_none()
        if seq is None:
            raise KeyError(f"no job {job_id}")
        first = int(seq) - len(rows) + 1
        conn.execute(_INSERT_EVENT, [
            {"job_id": job_id, "seq": first + i, "host": host, "kind": kind,
             "payload": dumps(payload), "time": when}
            for i, (host, kind, payload, when) in enumerate(rows)
        ])
        return int(seq)

    def record(self, job_id: int, event: RunEvent) -> int:
        """Write one run event (and the host state it implies), committed; its seq."""
        return self.record_many(job_id, [event])

    def record_many(self, job_id: int, batch: list[RunEvent]) -> int:
        """Write run events in one transaction (and the host states they imply); the last
        seq. One transaction is one commit: what a burst of events costs is one commit."""
        if not batch:
            return 0
        with self._write() as conn:
            return self._record(conn, job_id, batch)

    def start_and_record(self, job_id: int, batch: list[RunEvent]) -> tuple[int, bool]:
        """``start_job`` and ``record_many`` in one transaction: (the last seq, whether a
        cancel was requested while the job was queued)."""
        with self._write() as conn:
            cancel = self._start(conn, job_id)
            return (self._record(conn, job_id, batch) if batch else 0), cancel

    def _record(self, conn: Connection, job_id: int, batch: list[RunEvent]) -> int:
        rows: list[tuple[str | None, str, dict[str, Any], float]] = []
        for event in batch:
            payload = event_to_dict(event)
            host = payload.get("host")
            rows.append((host if isinstance(host, str) else None, event.kind, payload,
                         event.time))
        seq = self._append_many(conn, job_id, rows)
        for event, row in zip(batch, rows, strict=True):
            if isinstance(event, HostStarted):
                conn.execute(_HOST_STARTED, {"job": job_id, "h": event.host, "t": event.time})
            elif isinstance(event, HostFinished):
                conn.execute(_HOST_FINISHED, {"job": job_id, "h": event.host,
                                              "s": event.status, "t": event.time,
                                              "r": dumps(row[2])})
        return seq

    def record_note(self, job_id: int, kind: str, payload: dict[str, Any],
                    host: str | None = None) -> int:
        """Write an event of the store's own (a journal read back, a state change)."""
        with self._write() as conn:
            return self._append(conn, job_id, host, kind, payload, time.time())

    def start_job(self, job_id: int) -> bool:
        """Set a queued job ``running`` (its heartbeat beaten) in one transaction, unless a
        cancel was requested meanwhile: then nothing changes and the answer is True."""
        with self._write() as conn:
            return self._start(conn, job_id)

    def _start(self, conn: Connection, job_id: int) -> bool:
        flag = conn.execute(_CANCEL_FLAG, {"job": job_id}).scalar_one_or_none()
        if flag is None:
            raise KeyError(f"no job {job_id}")
        if flag:
            return True
        now = time.time()
        conn.execute(_START, {"job": job_id, "now": now})
        self._append(conn, job_id, None, JOB_STATE_EVENT, _RUNNING_NOTE, now)
        return False

    def set_state(self, job_id: int, state: str, *, error: str | None = None,
                  exit_code: int | None = None, stopped_early: str | None = None) -> float:
        """Move the job to ``state`` (times follow), and record it as a ``job_state`` event;
        the time it says it happened (``finished_at`` of a final state)."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        now = time.time()
        values: dict[str, Any] = {"state": state, "error": error}
        if state == RUNNING:
            values.update(started_at=func.coalesce(jobs.c.started_at, now), finished_at=None)
        if state in FINAL_STATES or state == INTERRUPTED:
            values.update(finished_at=now, exit_code=exit_code, stopped_early=stopped_early)
        note: dict[str, Any] = {"state": state, "error": error, "exit_code": exit_code}
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
            self._append(conn, job_id, None, JOB_STATE_EVENT, note, now)
        return now

    def take_over(self, job_id: int, hosts: dict[str, str | None]) -> None:
        """This process now owns the job (``jobs resume``); ``hosts`` go back to pending
        with their new request ids."""
        owner = me()
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                owner_host=owner.host, owner_pid=owner.pid, owner_boot=owner.boot,
                owner_start=owner.start, heartbeat_at=time.time(), cancel_requested=False))
            for host, rid in hosts.items():
                conn.execute(
                    update(job_hosts)
                    .where(job_hosts.c.job_id == job_id, job_hosts.c.host == host)
                    .values(state=HOST_PENDING, request_id=rid, result=None, finished_at=None)
                )

    def set_host_state(self, job_id: int, host: str, state: str) -> None:
        with self._write() as conn:
            conn.execute(update(job_hosts)
                         .where(job_hosts.c.job_id == job_id, job_hosts.c.host == host)
                         .values(state=state, finished_at=time.time()))

    def heartbeat(self, job_id: int) -> bool:
        """Say the owner is alive; whether a cancel was requested meanwhile."""
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=time.time()))
            return bool(conn.execute(_CANCEL_FLAG, {"job": job_id}).scalar_one_or_none())

    def request_cancel(self, job_id: int) -> bool:
        """Flag a queued or running job for cancelling; False if it is not active."""
        with self._write() as conn:
            done = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(sorted(ACTIVE_STATES)))
                .values(cancel_requested=True)
            )
            return bool(done.rowcount)

    def mark_interrupted_on_startup(self) -> list[int]:
        """Every queued/running job whose owner process is gone becomes ``interrupted``."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.owner_host, jobs.c.owner_pid, jobs.c.owner_boot,
                       jobs.c.owner_start, jobs.c.heartbeat_at)
                .where(jobs.c.state.in_(sorted(ACTIVE_STATES)))
            ).all()
        gone: list[int] = []
        for row in rows:
            who = owners.Owner(row.owner_host or "", row.owner_pid or 0, row.owner_boot or "",
                               row.owner_start or "")
            if not owners.is_alive(who, row.heartbeat_at, now):
                why = f"the control server running it stopped (pid {who.pid} on {who.host})"
                if self._interrupt(int(row.id), why):
                    gone.append(int(row.id))
        return gone

    def _interrupt(self, job_id: int, why: str) -> bool:
        now = time.time()
        with self._write() as conn:
            # Only if still active: another process may have done it meanwhile.
            done = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(sorted(ACTIVE_STATES)))
                .values(state=INTERRUPTED, error=why, finished_at=now)
            )
            if not done.rowcount:
                return False
            self._append(conn, job_id, None, JOB_STATE_EVENT,
                         {"state": INTERRUPTED, "error": why, "exit_code": None}, now)
            return True

    # --- reading ------------------------------------------------------------------------

    def list_jobs(self, state: str | list[str] | None = None, limit: int = 50) -> list[JobRecord]:
        """The newest jobs first (without their hosts)."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state.in_([state] if isinstance(state, str) else state))
        with self.engine.connect() as conn:
            return [job_record(row._mapping) for row in conn.execute(query)]

    def get_job(self, job_id: int) -> JobRecord | None:
        """The job with its hosts, in run order; None if there is no such job."""
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
            if row is None:
                return None
            host_rows = conn.execute(
                select(job_hosts).where(job_hosts.c.job_id == job_id)
                .order_by(job_hosts.c.position)
            ).all()
        return job_record(row._mapping, tuple(host_record(h._mapping) for h in host_rows))

    def events(self, job_id: int, after_seq: int = 0, limit: int | None = None,
               host: str | None = None, kinds: tuple[str, ...] = ()) -> list[EventRecord]:
        """The job's events with seq > ``after_seq``, in order."""
        query = (select(events).where(events.c.job_id == job_id, events.c.seq > after_seq)
                 .order_by(events.c.seq))
        if host is not None:
            query = query.where(events.c.host == host)
        if kinds:
            query = query.where(events.c.kind.in_(kinds))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [
                EventRecord(int(r.job_id), int(r.seq), r.host, r.kind, float(r.time),
                            loads(r.payload) or {})
                for r in conn.execute(query)
            ]
