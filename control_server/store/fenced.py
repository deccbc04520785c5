"""A job's writes under its lease: the ``JobStore`` API, each write refused once the lease
is lost.

    fenced = FencedJobStore(store.engine, lease)
    fenced.record_many(lease.job, batch)     # LeaseLost, and nothing stored, if a newer
    fenced.set_state(lease.job, SUCCEEDED)   # claim holds the job

Every ``JobStore`` write goes through its write transaction; here that transaction starts
with ``queue.guard``: the job's queue row is locked and its token compared before anything
is written, so the check and the write commit together, never a read and then a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from control_server.store.jobstore import JobStore
from control_server.store.queue import Lease, guard
from control_server.store.tx import write_tx


class FencedJobStore(JobStore):
    """Writes for ``lease.job`` only, each checked against the lease in its transaction.

    Shares ``engine`` with the store it was made from: close that one, not this."""

    def __init__(self, engine: Engine, lease: Lease) -> None:
        super().__init__(engine)
        self.lease = lease

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with write_tx(self.engine) as conn:
            guard(conn, self.lease)
            yield conn

    def close(self) -> None:
        """The engine belongs to the store this was made from."""
