"""Host leases on SQLite and a real PostgreSQL: each host's lease goes to one server, also
when servers acquire at once; renewals keep it, an expired one is lost to its holder and
taken over by another server with a bigger fence; a release frees it at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from race_helpers import race
from sqlalchemy import Engine, select

from control_server.store import hostleases, migrate
from control_server.store.engine import make_engine
from control_server.store.jobstore import JobStore
from control_server.store.schema import host_leases

TTL = 60.0  # never expires in a test unless the test expires it
HOSTS = [f"h{i:02d}" for i in range(40)]


def expire(engine: Engine, server: str, hosts: list[str]) -> None:
    """Let the leases lapse now, as a holder that stopped renewing would after its TTL."""
    assert hostleases.renew(engine, server, hosts, ttl=0.0) == []


def fences(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.host: int(r.fence) for r in conn.execute(
            select(host_leases.c.host, host_leases.c.fence))}


@pytest.fixture
def engines(db_url: str) -> Iterator[list[Engine]]:
    """Four engines on one migrated database, as four servers would have."""
    JobStore.open(db_url).close()
    made = [make_engine(db_url) for _ in range(4)]
    yield made
    for engine in made:
        engine.dispose()


def test_first_come_takes_and_the_others_get_nothing(store: JobStore) -> None:
    engine = store.engine
    assert hostleases.acquire(engine, "a", ["h2", "h1", "h1"], TTL) == ["h1", "h2"]
    assert hostleases.acquire(engine, "b", ["h1", "h2", "h3"], TTL) == ["h3"]
    assert hostleases.acquire(engine, "a", ["h1", "h2", "h3"], TTL) == []  # a holds h1, h2
    assert hostleases.holders(engine) == {"h1": "a", "h2": "a", "h3": "b"}
    assert hostleases.acquire(engine, "a", [], TTL) == []


def test_renew_keeps_what_is_held_and_reports_the_rest_lost(store: JobStore) -> None:
    engine = store.engine
    hostleases.acquire(engine, "a", ["h1", "h2"], TTL)
    hostleases.acquire(engine, "b", ["h3"], TTL)
    assert hostleases.renew(engine, "a", ["h1", "h2"], TTL) == []
    # h3 is b's and h4 was never leased: neither is a's to renew
    assert hostleases.renew(engine, "a", ["h1", "h3", "h4"], TTL) == ["h3", "h4"]
    assert hostleases.holders(engine) == {"h1": "a", "h2": "a", "h3": "b"}
    assert fences(engine) == {"h1": 1, "h2": 1, "h3": 1}  # renewals keep the fence


def test_an_expired_lease_is_lost_to_its_holder_and_taken_over(store: JobStore) -> None:
    engine = store.engine
    hostleases.acquire(engine, "a", ["h1", "h2"], TTL)
    expire(engine, "a", ["h1"])
    assert hostleases.holders(engine) == {"h2": "a"}
    assert hostleases.renew(engine, "a", ["h1", "h2"], TTL) == ["h1"]  # too late for h1
    assert hostleases.acquire(engine, "b", ["h1", "h2"], TTL) == ["h1"]
    assert hostleases.holders(engine) == {"h1": "b", "h2": "a"}
    assert fences(engine) == {"h1": 2, "h2": 1}
    assert hostleases.renew(engine, "a", ["h1"], TTL) == ["h1"]
    assert hostleases.renew(engine, "b", ["h1"], TTL) == []


def test_an_expired_lease_nobody_took_is_taken_back_by_acquire(store: JobStore) -> None:
    engine = store.engine
    hostleases.acquire(engine, "a", ["h1"], TTL)
    expire(engine, "a", ["h1"])
    assert hostleases.acquire(engine, "a", ["h1"], TTL) == ["h1"]
    assert hostleases.holders(engine) == {"h1": "a"} and fences(engine) == {"h1": 2}


def test_release_frees_the_hosts_at_once(store: JobStore) -> None:
    engine = store.engine
    hostleases.acquire(engine, "a", ["h1", "h2", "h3"], TTL)
    hostleases.acquire(engine, "b", ["h4"], TTL)
    hostleases.release(engine, "a", ["h1"])
    hostleases.release(engine, "a", ["h4"])  # not a's: left alone
    assert hostleases.acquire(engine, "b", ["h1", "h2"], TTL) == ["h1"]
    hostleases.release(engine, "a")
    assert hostleases.holders(engine) == {"h1": "b", "h4": "b"}
    assert hostleases.acquire(engine, "c", ["h2", "h3", "h4"], TTL) == ["h2", "h3"]


def _acquire_race(engines: list[Engine]) -> list[list[str]]:
    got: list[list[str]] = [[] for _ in engines]

    def acquirer(i: int) -> None:
        # Each server goes through every host, in chunks, from its own starting point: the
        # chunks of different servers overlap while they run.
        mine = HOSTS[i * 10:] + HOSTS[:i * 10]
        for start in range(0, len(mine), 5):
            got[i] += hostleases.acquire(engines[i], f"server-{i}", mine[start:start + 5], TTL)

    race(len(engines), acquirer)
    return got


def _assert_each_host_once(engine: Engine, got: list[list[str]]) -> None:
    everything = [h for hosts in got for h in hosts]
    assert sorted(everything) == HOSTS  # every host taken, none twice
    owners = {h: f"server-{i}" for i, hosts in enumerate(got) for h in hosts}
    assert hostleases.holders(engine) == owners


def test_servers_acquiring_at_once_take_each_host_once(engines: list[Engine]) -> None:
    got = _acquire_race(engines)  # every row is new: the inserts race
    _assert_each_host_once(engines[0], got)
    for i, hosts in enumerate(got):
        if hosts:
            expire(engines[0], f"server-{i}", hosts)
    got = _acquire_race(engines)  # every row expired: the takeovers race
    _assert_each_host_once(engines[0], got)
    assert set(fences(engines[0]).values()) == {2}


def test_a_0003_store_upgrades_with_no_leases(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0003")
    with pytest.raises(Exception, match="host_leases"):
        hostleases.holders(engine)
    engine.dispose()
    with JobStore.open(db_url) as store:
        assert migrate.current_revision(store.engine) == "0004"
        assert hostleases.holders(store.engine) == {}
        assert hostleases.acquire(store.engine, "a", ["h1"], TTL) == ["h1"]
