"""PostgreSQL sessions of the store end when left idle in a transaction (a paused server
must not keep row locks past a lease's TTL): the setting is in effect on every pooled
connection, and the server does end a session idle in a transaction past it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy.exc
from pg_helpers import postgres_url

from control_server.store import engine as engines
from control_server.store.jobstore import JobStore
from control_server.store.queue import claim_next
from control_server.store.servers import STALE_AFTER


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    return postgres_url(request)


def test_every_session_has_the_idle_in_transaction_timeout(pg_url: str) -> None:
    assert engines.IDLE_IN_TRANSACTION_TIMEOUT_MS < STALE_AFTER * 1000  # below the TTL
    store = JobStore.open(pg_url)
    try:
        # Two connections at once: two sessions the pool opened, each set on connect.
        with store.engine.connect() as one, store.engine.connect() as two:
            pids = set()
            for conn in (one, two):
                shown = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout")
                assert shown.scalar() == f"{engines.IDLE_IN_TRANSACTION_TIMEOUT_MS // 1000}s"
                pids.add(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            assert len(pids) == 2
        assert claim_next(store.engine, "s1", ttl=30) is None  # the store still works
    finally:
        store.close()


def test_a_session_idle_in_a_transaction_is_ended(pg_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    JobStore.open(pg_url).close()  # migrated
    monkeypatch.setattr(engines, "IDLE_IN_TRANSACTION_TIMEOUT_MS", 300)
    engine = engines.make_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT * FROM job_queue FOR UPDATE").all()  # locks held
            time.sleep(2.0)  # paused inside the transaction, well past the timeout
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="idle-in-transaction timeout"):
                conn.exec_driver_sql("SELECT 1").all()
        with engine.connect() as conn:  # the pool replaces the ended session
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
