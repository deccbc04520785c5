"""A store made before several servers (revision 0001), with a job in it, upgrades to
the newest revision on open: the job is kept and can be queued and claimed."""

from __future__ import annotations

from control_server.store import migrate, queue
from control_server.store.engine import make_engine
from control_server.store.jobstore import JobStore
from control_server.store.records import NewJob


def test_a_0001_store_upgrades_keeping_its_jobs(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    job_id = JobStore(engine).create_job(NewJob("adhoc", "uptime", "all", (("h1", "r1"),),
                                                "me"))
    engine.dispose()

    with JobStore.open(db_url) as store:
        assert migrate.current_revision(store.engine) == migrate.SCHEMA_REVISION
        job = store.get_job(job_id)
        assert job is not None and job.what == "uptime"
        queue.enqueue(store.engine, job_id)
        lease = queue.claim_next(store.engine, "a", 60.0)
        assert lease is not None and (lease.job, lease.token) == (job_id, 1)
