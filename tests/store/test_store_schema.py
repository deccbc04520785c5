"""Migrations from an empty database, the schema they make, concurrent first opens."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from control_server.store import migrate
from control_server.store.engine import make_engine
from control_server.store.jobstore import JobStore
from control_server.store.schema import metadata

TABLES = {"jobs", "job_hosts", "events", "tokens", "host_events", "instances"}


def test_migrations_run_from_empty_and_match_the_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.SCHEMA_REVISION
    assert set(inspect(engine).get_table_names()) >= TABLES | {"alembic_version"}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    engine.dispose()


def test_schema_revision_is_the_newest_migration() -> None:
    assert migrate.head_revision() == migrate.SCHEMA_REVISION


def test_downgrade_to_empty_and_up_again(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    from alembic import command

    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_opening_twice_is_a_no_op_and_keeps_jobs(db_url: str) -> None:
    from control_server.store.records import NewJob

    with JobStore.open(db_url) as store:
        job_id = store.create_job(NewJob("adhoc", "uptime", "all", (("h1", "r1"),), "me"))
    with JobStore.open(db_url) as store:
        job = store.get_job(job_id)
        assert job is not None and job.what == "uptime"


def test_first_opens_at_once_all_succeed(sqlite_url: str) -> None:
    """Several processes (here threads, each its own engine) opening a new database at
    once: the write lock serializes the migration, the others find it done."""
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            JobStore.open(sqlite_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(sqlite_url)
    assert migrate.current_revision(engine) == migrate.SCHEMA_REVISION
    engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    with JobStore.open(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
