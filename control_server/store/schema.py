"""The job store's tables (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Portable on purpose: times are epoch seconds (``Float``, double precision on both), JSON is
``Text`` holding a JSON document (SQLite has no JSON type; reading it back as text keeps
one code path), ids are plain integers. Alembic migrations (``migrations/versions``) create
these tables; this module is what queries are written against, and a test checks that
the migrated database and this metadata agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Constraint names fixed by convention, so later migrations can alter them by name (and
# SQLite batch migrations can recreate them).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # template | adhoc
    Column("what", Text, nullable=False),  # template name or the ad hoc command
    Column("pattern", Text, nullable=False),
    Column("limit_pattern", Text),
    Column("check_mode", Boolean, nullable=False, default=False),
    Column("vars", Text, nullable=False, default="{}"),  # extra vars, secrets as ********
    Column("task", Text, nullable=False),  # JSON: how to rebuild the task (resume)
    Column("config", Text, nullable=False),  # JSON: run options, transport, templates dirs
    Column("inventory", Text, nullable=False),  # JSON: {sources, cwd} (resume)
    Column("who", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("exit_code", Integer),
    Column("error", Text),  # why it failed, was interrupted or cancelled
    Column("stopped_early", Text),
    # Who runs it: a job still `running` whose owner is gone becomes `interrupted`.
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("owner_boot", String(64)),  # the kernel's boot id: a reboot ends every owner
    Column("owner_start", String(64)),  # the process's start time: pids get reused
    Column("heartbeat_at", Float),  # for owners on other machines (shared PostgreSQL)
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("last_seq", Integer, nullable=False, default=0),  # the events' seq allocator
    sqlite_autoincrement=True,  # ids are never reused after a delete
)
Index("ix_jobs_state", jobs.c.state)
Index("ix_jobs_created_at", jobs.c.created_at)

job_hosts = Table(
    "job_hosts",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("host", String(255), primary_key=True),
    Column("position", Integer, nullable=False),  # the run's host order
    Column("request_id", String(64)),  # the executor request: its journal is read back
    Column("state", String(16), nullable=False),  # pending | running | ok | failed | ...
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("result", Text),  # JSON of the HostFinished event
    Column("attempts", Integer, nullable=False, default=0),
)

events = Table(
    "events",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),  # dense, ordered per job: the SSE event id
    Column("host", String(255)),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("time", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("hash", Text, nullable=False),  # "scrypt$..." or "sha256$...": never the token
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    sqlite_autoincrement=True,
)

# For the host event listener (domain started/crashed/stopped), added now so its step
# needs no migration of the tables above.
host_events = Table(
    "host_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("instance", String(255)),
    Column("payload", Text, nullable=False),
    Column("time", Float, nullable=False),
    Column("received_by", String(255)),
    sqlite_autoincrement=True,
)
Index("ix_host_events_host_time", host_events.c.host, host_events.c.time)

instances = Table(
    "instances",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("uuid", String(64)),
    Column("state", String(32), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
)

# --- Several control servers (issue 10) ----------------------------------------------------
# Each running ``serve``: registered at start, heartbeating while it runs, deleted when it
# stops. A second server on a SQLite store is refused from what this table holds.
servers = Table(
    "servers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("boot", String(64)),  # with the process start time: a reused pid is not alive
    Column("proc_start", String(64)),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),  # the database's clock, not the server's
)

# The job queue and each job's lease, in a table of its own so that the jobs table (written
# on every event) keeps its shape. ``fence`` only ever grows: every claim bumps it, and a
# write carrying an older value is refused (the fencing token).
job_queue = Table(
    "job_queue",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), nullable=False),  # queued | claimed | done
    Column("enqueued_at", Float, nullable=False),
    Column("owner", String(100)),  # servers.id of the holder (kept after it is gone)
    Column("lease_expires", Float),  # the database's clock
    Column("fence", Integer, nullable=False, default=0),
    Column("claimed_at", Float),
)
Index("ix_job_queue_state", job_queue.c.state, job_queue.c.enqueued_at)

# What a placement takes of a host, made in the transaction that decides the placement.
capacity_claims = Table(
    "capacity_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL")),
    Column("instance", String(255), nullable=False),
    Column("memory_mib", Integer, nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("disk_gib", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),  # held | released
    Column("created_at", Float, nullable=False),
    Column("released_at", Float),
    sqlite_autoincrement=True,
)
Index("ix_capacity_claims_host", capacity_claims.c.host, capacity_claims.c.state)

# Each host's last facts, shared by every server: a restart, or another server, answers
# /v1/hosts and places instances from what any server gathered (issue 10 §2).
host_facts = Table(
    "host_facts",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("facts", Text, nullable=False),  # JSON: the facts groups, merged per group
    Column("gathered_at", Float, nullable=False),  # when the newest group was gathered
    Column("job_id", Integer),  # the job that gathered it; facts outlive jobs: no FK
)

# Which server watches each host's hypervisor events (``store/hostleases.py``): held while
# ``lease_expires`` (the database's clock) is ahead; ``fence`` grows with each acquisition.
host_leases = Table(
    "host_leases",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("owner", String(100), nullable=False),  # servers.id (kept after it is gone)
    Column("lease_expires", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("fence", Integer, nullable=False, default=1),
)
