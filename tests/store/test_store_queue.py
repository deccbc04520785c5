"""The job queue and its leases on SQLite and a real PostgreSQL: exclusive claims under
concurrency, takeover of an expired lease with a bigger token, renewals, releases, and
writes refused (nothing stored) once a newer claim holds the job."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from race_helpers import race
from sqlalchemy import Engine, func, select

from control_server.events import HostStarted
from control_server.store import queue
from control_server.store.engine import make_engine
from control_server.store.fenced import FencedJobStore
from control_server.store.jobstore import JobStore
from control_server.store.records import QUEUED, RUNNING, SUCCEEDED, NewJob
from control_server.store.schema import events, job_hosts

TTL = 60.0  # long enough never to expire in a test unless the test expires it


def new_job(store: JobStore, hosts: tuple[str, ...] = ("h1",)) -> int:
    job_id = store.create_job(NewJob("adhoc", "uptime", "all",
                                     tuple((h, f"r-{h}") for h in hosts), "me"))
    queue.enqueue(store.engine, job_id)
    return job_id


def expire(engine: Engine, lease: queue.Lease) -> None:
    """Let ``lease`` lapse now (its holder renews with no time left), as a holder that
    stopped renewing would after its TTL."""
    renewed, lost = queue.renew(engine, lease.server, [lease], ttl=0.0)
    assert lost == [] and len(renewed) == 1


def event_count(engine: Engine, job_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)
                                .where(events.c.job_id == job_id)).scalar_one())


@pytest.fixture
def engines(db_url: str) -> Iterator[list[Engine]]:
    """Four engines on one database, as four servers would have (the store migrated)."""
    JobStore.open(db_url).close()
    made = [make_engine(db_url) for _ in range(4)]
    yield made
    for engine in made:
        engine.dispose()


def test_concurrent_claims_take_each_job_exactly_once(store: JobStore,
                                                      engines: list[Engine]) -> None:
    jobs = [new_job(store) for _ in range(100)]
    claimed: list[list[queue.Lease]] = [[] for _ in engines]

    def claimer(i: int) -> None:
        while (lease := queue.claim_next(engines[i], f"server-{i}", TTL)) is not None:
            claimed[i].append(lease)

    race(len(engines), claimer)
    everything = [lease for leases in claimed for lease in leases]
    assert sorted(lease.job for lease in everything) == jobs
    assert {lease.token for lease in everything} == {1}
    for i, leases in enumerate(claimed):
        for lease in leases:
            info = queue.lease_of(store.engine, lease.job)
            assert info is not None and info.owner == f"server-{i}" and not info.expired


def test_a_held_lease_is_not_claimed_and_an_expired_one_is_taken_over(store: JobStore) -> None:
    job_id = new_job(store)
    first = queue.claim_next(store.engine, "a", TTL)
    assert first is not None and (first.job, first.token, first.previous_owner) == (job_id, 1,
                                                                                    None)
    assert queue.claim_next(store.engine, "b", TTL) is None
    assert queue.claim(store.engine, job_id, "b", TTL) is None
    assert queue.expired(store.engine) == []

    expire(store.engine, first)
    assert [(i.job, i.owner, i.token) for i in queue.expired(store.engine)] == [(job_id, "a", 1)]
    second = queue.claim_next(store.engine, "b", TTL)
    assert second is not None
    assert (second.job, second.token, second.previous_owner) == (job_id, 2, "a")
    info = queue.lease_of(store.engine, job_id)
    assert info is not None and (info.owner, info.token, info.expired) == ("b", 2, False)
    # The old holder's renewal finds the job gone to a newer token.
    renewed, lost = queue.renew(store.engine, "a", [first], TTL)
    assert (renewed, lost) == ([], [first])


def test_a_stale_token_write_is_refused_and_nothing_of_it_is_stored(store: JobStore) -> None:
    job_id = new_job(store, hosts=("h1",))
    old = queue.claim_next(store.engine, "a", TTL)
    assert old is not None
    FencedJobStore(store.engine, old).set_state(job_id, RUNNING)
    expire(store.engine, old)
    new = queue.claim_next(store.engine, "b", TTL)
    assert new is not None and new.token > old.token
    before = event_count(store.engine, job_id)

    stale = FencedJobStore(store.engine, old)
    with pytest.raises(queue.LeaseLost) as lost:
        stale.record_many(job_id, [HostStarted(host="h1")])
    assert (lost.value.job, lost.value.token, lost.value.current) == (job_id, 1, 2)
    assert "server b holds it now with token 2" in str(lost.value)
    with pytest.raises(queue.LeaseLost):
        stale.set_state(job_id, SUCCEEDED)
    with pytest.raises(queue.LeaseLost):
        stale.record_note(job_id, "note", {"from": "the old holder"})

    assert event_count(store.engine, job_id) == before
    job = store.get_job(job_id)
    assert job is not None and job.state == RUNNING
    with store.engine.connect() as conn:
        host_state = conn.execute(select(job_hosts.c.state)
                                  .where(job_hosts.c.job_id == job_id)).scalar_one()
    assert host_state == "pending"

    # The new holder's writes go through.
    current = FencedJobStore(store.engine, new)
    current.record_many(job_id, [HostStarted(host="h1")])
    current.set_state(job_id, SUCCEEDED)
    job = store.get_job(job_id)
    assert job is not None and job.state == SUCCEEDED and job.hosts[0].state == "running"
    assert event_count(store.engine, job_id) == before + 2


def test_renew_extends_the_lease_and_heartbeats(store: JobStore) -> None:
    new_job(store)
    lease = queue.claim_next(store.engine, "a", 5.0)
    assert lease is not None
    renewed, lost = queue.renew(store.engine, "a", [lease], 600.0)
    assert lost == [] and len(renewed) == 1
    assert renewed[0].token == lease.token and renewed[0].expires > lease.expires + 500
    assert renewed[0].deadline > lease.deadline + 500 and not renewed[0].lapsed()
    assert renewed[0].lapsed(now=renewed[0].deadline)
    info = queue.lease_of(store.engine, lease.job)
    assert info is not None and info.expires == renewed[0].expires


def test_release_ends_the_lease_and_requeue_hands_it_on(store: JobStore) -> None:
    done_job, requeued_job = new_job(store), new_job(store)
    done = queue.claim(store.engine, done_job, "a", TTL)
    assert done is not None
    queue.release(store.engine, done)
    info = queue.lease_of(store.engine, done_job)
    assert info is not None and (info.state, info.owner, info.token) == (queue.DONE, None, 1)
    with pytest.raises(queue.LeaseLost, match="no longer claimed"):
        queue.release(store.engine, done)
    with pytest.raises(queue.LeaseLost):
        FencedJobStore(store.engine, done).record_note(done_job, "late", {})

    given_back = queue.claim(store.engine, requeued_job, "a", TTL)
    assert given_back is not None
    queue.release(store.engine, given_back, requeue=True)
    again = queue.claim_next(store.engine, "b", TTL)
    assert again is not None and (again.job, again.token) == (requeued_job, 2)
    assert queue.claim_next(store.engine, "c", TTL) is None  # the done one stays done
    job = store.get_job(requeued_job)
    assert job is not None and job.state == QUEUED  # the queue never touches the job's state


def test_a_write_in_flight_holds_off_a_takeover_until_it_commits(db_url: str,
                                                                store: JobStore) -> None:
    """PostgreSQL: the guard's row lock makes a claimer skip the job while a write under
    the old token is in its transaction; the claim after it commits gets the next token."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers on the file lock: no concurrent claim")
    job_id = new_job(store)
    old = queue.claim(store.engine, job_id, "a", 0.0)  # expired as soon as it is made
    assert old is not None and old.lapsed()
    inside, finish = threading.Event(), threading.Event()

    def slow_write() -> None:
        with queue.fenced_write(store.engine, old):
            inside.set()
            finish.wait(30)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert inside.wait(30)
    other = make_engine(db_url)
    try:
        assert queue.claim_next(other, "b", TTL) is None
        finish.set()
        writer.join()
        taken = queue.claim_next(other, "b", TTL)
        assert taken is not None and (taken.job, taken.token) == (job_id, 2)
    finally:
        finish.set()
        other.dispose()
