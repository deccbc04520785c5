"""Telling a store that is busy or unavailable from a bug, without SQLAlchemy outside
``store/``: serve answers the first with a 503 (retry), the second with a 500; the job
sink retries the first (``transient``) and stops at a fencing refusal (``lease_refused``).

SQLAlchemy and ``store.queue`` are looked up only once something loaded them: none of
their exceptions can exist before, and the CLI's lean SQLite path (``sqlite_writer``,
which the sink serves too) must not load SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
import sys

# PostgreSQL's SQLSTATEs for "try again": the transaction was rolled back and the same
# one may commit later. Class 08: the connection; 53: out of resources (too many
# connections); 57P01-03: the server shutting down, crashed, starting up; 40001/40P01:
# serialization failure, deadlock; 55P03: a lock not available.
_TRANSIENT_CLASSES = ("08", "53")
_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "55P03"})


def store_failure(exc: BaseException) -> str | None:
    """What went wrong with the database (``database is locked``, no free pooled
    connection, the server gone), or None when ``exc`` is not the database's."""
    if isinstance(exc, sqlite3.Error):  # the lean writer (store/sqlite_writer.py)
        return str(exc)
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError, DisconnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, DBAPIError):
        return str(exc.orig).strip() or type(exc.orig).__name__
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return str(exc).splitlines()[0]
    return None


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the store away for a while, the write rolled back and worth
    trying again: the connection lost or refused, PostgreSQL restarting or shutting down,
    SQLite's ``database is locked`` past its busy timeout, no free pooled connection."""
    if isinstance(exc, sqlite3.Error):
        return _sqlite_busy(exc)
    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy.exc import DBAPIError, DisconnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout | DisconnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy saw the connection die
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return _sqlite_busy(orig)
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES
    # No SQLSTATE: the driver's own connection errors (refused, the socket gone, "server
    # closed the connection unexpectedly"), which psycopg raises as OperationalError.
    return _psycopg_operational(orig)


def lease_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a fenced write refused because a newer claim holds the job
    (``store.queue.LeaseLost``): never worth trying again."""
    if "control_server.store.queue" not in sys.modules:
        return False
    from control_server.store.queue import LeaseLost

    return isinstance(exc, LeaseLost)


def _sqlite_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _psycopg_operational(orig: BaseException | None) -> bool:
    if "psycopg" not in sys.modules:
        return False
    import psycopg

    return isinstance(orig, psycopg.OperationalError)
