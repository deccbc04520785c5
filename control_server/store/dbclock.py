"""The database's clock, for leases and heartbeats that several machines compare.

Every control server reads expiry and heartbeat times against the one clock they share,
the database's, so a server whose own clock is off cannot steal a lease early or keep one
late. Epoch seconds, as a double, like every time in the schema.
"""

from __future__ import annotations

from sqlalchemy import Connection, Float, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

_JULIAN_EPOCH = 2440587.5  # julianday() of 1970-01-01T00:00:00Z


def now_expr(conn: Connection) -> ColumnElement[float]:
    """An SQL expression for "now" on ``conn``'s database."""
    if conn.dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is the transaction's start, which a
        # transaction that waited on a row lock would see as the past.
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return cast((func.julianday("now") - _JULIAN_EPOCH) * 86400.0, Float)


def read_now(conn: Connection) -> float:
    return float(conn.execute(select(now_expr(conn))).scalar_one())
