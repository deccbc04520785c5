"""A write transaction on an engine, for the store modules that are not ``JobStore``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from control_server.store.engine import WRITE


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on leaving."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        yield conn
