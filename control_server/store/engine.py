"""Opening the database: the default SQLite file, its pragmas, and write transactions.

SQLite runs in WAL mode (readers never block the writer, and a commit is an append to the
WAL), ``synchronous=NORMAL`` (a commit is not fsync'd: it survives the process being
killed, SIGKILL included, and only an OS crash or power loss can take the last commits),
and a busy timeout so several processes (a run, ``jobs events --follow``, ``serve``) share
the file. Write transactions start with ``BEGIN IMMEDIATE``: taking the write lock up front
means a reader turned writer never fails with SQLITE_BUSY half way. On PostgreSQL every
session gets ``idle_in_transaction_session_timeout`` (``IDLE_IN_TRANSACTION_TIMEOUT_MS``).

A PostgreSQL restart or fail-over ends every pooled session: the pool pings a connection
before handing it out (``pool_pre_ping``) and replaces a dead one, and a connection found
dead mid-use invalidates the rest of the pool, so the first use after the restart works.
What fails during the outage is the store's ``failures.transient``: the job sink retries
it, serve answers it with a 503. ``PG_CONNECT_ARGS`` bound how long a database that stops
answering (a partition, a dead host) can hold a caller: connecting, and a sent query.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

BUSY_TIMEOUT_MS = 30_000
# Tests shorten it to make a store that stays locked answer SQLITE_BUSY quickly.
ENV_BUSY_TIMEOUT = "HOSTPLANE_SQLITE_BUSY_TIMEOUT_MS"
# PostgreSQL ends a session left idle inside a transaction this long (a server paused by
# SIGSTOP, a long GC or a partition mid-transaction). Its row locks would otherwise stay,
# and SKIP LOCKED claimers would skip its jobs even after the lease expired: a third of
# the 30 s lease TTL (queue's, servers.STALE_AFTER), so the locks go well before another
# server may take the lease. The store's own transactions idle for milliseconds at most.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
WRITE = "hostplane_write"  # execution option: this connection's transaction will write
# libpq's; the URL's own (?connect_timeout=...) win. TCP only (a Unix socket needs none):
# a dead peer is noticed by keepalives on an idle connection within ~25 s, and data sent
# and not acknowledged for tcp_user_timeout ms fails the query instead of waiting for the
# kernel's retransmissions (some 15 minutes) while a sink's durable() waits.
PG_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
    "keepalives_count": 3, "tcp_user_timeout": 30_000,
}


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own implicit BEGIN is turned off: SQLAlchemy's "begin" event emits ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"busy_timeout={int(os.environ.get(ENV_BUSY_TIMEOUT) or BUSY_TIMEOUT_MS)}",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    # A session setting (SET, not SET LOCAL): it outlives this transaction, which is
    # committed at once so the pool hands the connection out idle.
    cursor = dbapi_connection.cursor()
    cursor.execute(
        f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    cursor.close()
    dbapi_connection.commit()


def _sqlite_begin(conn: Connection) -> None:
    writing = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created (private)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        given = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}
        engine = create_engine(url, pool_pre_ping=True, connect_args=given)
        event.listen(engine, "connect", _postgresql_connect)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    # The pool keeps connections open: per-event commits must not reconnect each time.
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine
