"""Telling a store that is busy or unavailable from a bug, without SQLAlchemy outside
``store/``: serve answers the first with a 503 (retry), the second with a 500."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def store_failure(exc: BaseException) -> str | None:
    """What went wrong with the database (``database is locked``, no free pooled
    connection, the server gone), or None when ``exc`` is not the database's."""
    if isinstance(exc, DBAPIError):
        return str(exc.orig).strip() or type(exc.orig).__name__
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return str(exc).splitlines()[0]
    if isinstance(exc, sqlite3.Error):  # the lean writer (store/sqlite_writer.py)
        return str(exc)
    return None
