"""Which store failures are worth trying again (``failures.transient``): the store away or
busy, never a bug or a fencing refusal (``failures.lease_refused``)."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg.errors as pg
import pytest
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_server.store.failures import lease_refused, store_failure, transient
from control_server.store.queue import LeaseLost


def _wrapped(cls: type[Exception], orig: Exception, invalidated: bool = False) -> Exception:
    return cls("INSERT INTO events ...", {}, orig, connection_invalidated=invalidated)  # type: ignore[call-arg]


TRANSIENT = {
    "server shutting down": _wrapped(OperationalError, pg.AdminShutdown(
        "terminating connection due to administrator command")),
    "server starting up": _wrapped(OperationalError, pg.CannotConnectNow(
        "the database system is starting up")),
    "connection refused": _wrapped(OperationalError, psycopg.OperationalError(
        "connection failed: No such file or directory")),
    "connection invalidated": _wrapped(ProgrammingError, psycopg.ProgrammingError("gone"),
                                       invalidated=True),
    "too many connections": _wrapped(OperationalError, pg.TooManyConnections("too many")),
    "deadlock": _wrapped(OperationalError, pg.DeadlockDetected("deadlock detected")),
    "sqlite locked": _wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
    "lean writer locked": sqlite3.OperationalError("database is locked"),
    "pool timeout": PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
    "disconnection": DisconnectionError("ping failed"),
}

NOT_TRANSIENT = {
    "unique violation": _wrapped(IntegrityError, pg.UniqueViolation("duplicate key")),
    "syntax": _wrapped(ProgrammingError, pg.SyntaxError("syntax error")),
    "no such table": _wrapped(OperationalError, sqlite3.OperationalError("no such table: x")),
    "lean writer, no table": sqlite3.OperationalError("no such table: jobs"),
    "a bug": KeyError("no job 3"),
    "lease lost": LeaseLost(3, 1, 2, "other"),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_the_store_away_or_busy_is_transient(name: str) -> None:
    exc = TRANSIENT[name]
    assert transient(exc)
    assert store_failure(exc)  # and serve's 503 says what it was
    assert not lease_refused(exc)


@pytest.mark.parametrize("name", sorted(NOT_TRANSIENT))
def test_bugs_and_refusals_are_not_transient(name: str) -> None:
    assert not transient(NOT_TRANSIENT[name])


def test_a_fencing_refusal_is_told_apart() -> None:
    assert lease_refused(LeaseLost(3, 1, 2, "other"))
    assert not lease_refused(RuntimeError("job 3: lease lost"))
