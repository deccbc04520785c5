"""A PostgreSQL restart ends every pooled session: the store's engine hands out live
connections again at once after it (``pool_pre_ping``), and what failed while the server
was down is what the sink retries (``failures.transient``). The timeouts that bound a
database that stops answering are on every connection (the URL's own win)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy.exc
from pg_helpers import new_database, restart_server, running_server, unavailable
from sqlalchemy import text

from control_server.store import engine as engines
from control_server.store.failures import transient
from control_server.store.jobstore import JobStore


@pytest.fixture
def own_server() -> Iterator[str]:
    """A server of this test's own: restarting the session's would cut other tests off."""
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL: {why}")
    with running_server() as admin:
        yield admin


def test_the_pool_recovers_from_a_restart_and_the_outage_is_transient(own_server: str) -> None:
    url = new_database(own_server)
    store = JobStore.open(url)
    try:
        with store.engine.connect() as one, store.engine.connect() as two:
            before = {c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in (one, two)}
        assert store.engine.pool.checkedin() == 2  # type: ignore[attr-defined]  # both pooled

        def down() -> None:  # another engine: the store's pool must not see the outage
            other = engines.make_engine(url)
            try:
                with pytest.raises(sqlalchemy.exc.OperationalError) as failed, \
                        other.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                other.dispose()
            assert transient(failed.value), failed.value

        restart_server(own_server, down_for=0.5, while_down=down)

        for _ in range(2):  # each pooled connection, the first use after the restart
            with store.engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                assert pid not in before
        assert store.list_jobs() == []  # the store reads and writes again
    finally:
        store.close()


def test_postgresql_connections_carry_the_timeouts(own_server: str) -> None:
    url = new_database(own_server)
    engine = engines.make_engine(url)
    own = engines.make_engine(url + "&connect_timeout=3")
    try:
        for made, timeout in ((engine, "10"), (own, "3")):
            with made.connect() as conn:
                params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            assert params["connect_timeout"] == timeout
            assert params["tcp_user_timeout"] == str(engines.PG_CONNECT_ARGS["tcp_user_timeout"])
            assert params["keepalives_idle"] == "10"
    finally:
        engine.dispose()
        own.dispose()
