"""Host facts in the store (issue 10 §2), on SQLite and a real PostgreSQL: put, get, all;
a gather of some groups keeps the others; two servers' first gathers of one host both
land; a 0002 store upgrades with its jobs kept and an empty host_facts table."""

from __future__ import annotations

import pytest
from race_helpers import race

from control_server.store import migrate
from control_server.store.engine import make_engine
from control_server.store.facts import HostFacts, HostFactsTable
from control_server.store.jobstore import JobStore
from control_server.store.records import NewJob


def test_put_get_all(store: JobStore) -> None:
    table = HostFactsTable(store.engine)
    assert table.all() == [] and table.get("h1") is None
    table.put(HostFacts("h2", {"cpu": {"count": 8}}, 20.0, None))
    table.put(HostFacts("h1", {"memory": {"total": 2**33}}, 10.0, 7))
    assert table.get("h1") == HostFacts("h1", {"memory": {"total": 2**33}}, 10.0, 7)
    assert [f.host for f in table.all()] == ["h1", "h2"]
    table.put(HostFacts("h1", {"cpu": {"count": 2}}, 30.0, None))
    assert table.get("h1") == HostFacts("h1", {"cpu": {"count": 2}}, 30.0, None)


def test_merge_replaces_the_groups_gathered_and_keeps_the_others(store: JobStore) -> None:
    table = HostFactsTable(store.engine)
    first = table.merge("h1", {"cpu": {"count": 4}, "memory": {"total": 1}}, 10.0, 3)
    assert first == HostFacts("h1", {"cpu": {"count": 4}, "memory": {"total": 1}}, 10.0, 3)
    table.merge("h1", {"memory": {"total": 2}}, 12.0, None)
    assert table.get("h1") == HostFacts("h1", {"cpu": {"count": 4}, "memory": {"total": 2}},
                                        12.0, None)


def test_two_servers_first_gathers_of_one_host_both_land(db_url: str) -> None:
    JobStore.open(db_url).close()
    engines = [make_engine(db_url) for _ in range(4)]

    def gather(i: int) -> None:
        HostFactsTable(engines[i]).merge("h1", {f"group{i}": {"n": i}}, float(i))

    try:
        race(len(engines), gather)
        got = HostFactsTable(engines[0]).get("h1")
        assert got is not None
        assert got.facts == {f"group{i}": {"n": i} for i in range(4)}
        assert got.gathered_at == 3.0
    finally:
        for engine in engines:
            engine.dispose()


def test_a_0002_store_upgrades_with_an_empty_facts_table(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0002")
    job_id = JobStore(engine).create_job(NewJob("adhoc", "uptime", "all", (("h1", "r1"),),
                                                "me"))
    with pytest.raises(Exception, match="host_facts"):
        HostFactsTable(engine).all()
    engine.dispose()
    with JobStore.open(db_url) as store:
        assert migrate.current_revision(store.engine) == migrate.SCHEMA_REVISION
        assert store.get_job(job_id) is not None
        assert HostFactsTable(store.engine).all() == []
