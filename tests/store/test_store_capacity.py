"""Capacity claims on SQLite and a real PostgreSQL: placements racing from four engines
(four servers, 100 requests for 35 places) never over-book a host; a claim under a lost lease is refused."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import pytest
from race_helpers import race
from sqlalchemy import Engine

from control_server.store import capacity, queue
from control_server.store.capacity import Choice, Usage
from control_server.store.engine import make_engine
from control_server.store.jobstore import JobStore
from control_server.store.records import NewJob

HOST_MIB = {"h1": 200_000, "h2": 150_000}  # room for 20 + 15 instances of 10,000 MiB
ASK = 10_000


def most_room(name: str) -> Callable[[Mapping[str, Usage]], Choice | None]:
    """The decision placement makes: the host with the most memory left that fits."""
    def decide(held: Mapping[str, Usage]) -> Choice | None:
        left = {h: HOST_MIB[h] - u.memory_mib for h, u in held.items()}
        fits = sorted((h for h, m in left.items() if m >= ASK), key=lambda h: (-left[h], h))
        return Choice(fits[0], name, ASK, 2) if fits else None
    return decide


def test_racing_placements_never_over_book(db_url: str) -> None:
    JobStore.open(db_url).close()
    engines: list[Engine] = [make_engine(db_url) for _ in range(4)]
    made: list[capacity.CapacityClaim] = []
    refused: list[str] = []

    def server(i: int) -> None:
        for n in range(25):
            name = f"vm-{i}-{n}"
            got = capacity.claim_capacity(engines[i], HOST_MIB, most_room(name))
            (made.append(got) if got is not None else refused.append(name))

    try:
        race(len(engines), server)
        assert len(made) == 35 and len(refused) == 65
        held = capacity.usage(engines[0], HOST_MIB)
        assert {h: u.memory_mib for h, u in held.items()} == HOST_MIB
        assert held["h1"].vcpus == 40
        assert capacity.release_capacity(engines[0], made[0].id)
        assert not capacity.release_capacity(engines[0], made[0].id)
        again = capacity.claim_capacity(engines[0], HOST_MIB, most_room("vm-again"))
        assert again is not None and again.host == made[0].host
    finally:
        for engine in engines:
            engine.dispose()


def test_a_claim_under_a_lost_lease_is_refused(store: JobStore) -> None:
    job_id = store.create_job(NewJob("template", "vm", "all", (("h1", "r1"),), "me"))
    queue.enqueue(store.engine, job_id)
    old = queue.claim_next(store.engine, "a", 60.0)
    assert old is not None
    mine = capacity.claim_capacity(store.engine, ["h1"], most_room("vm-a"), old)
    assert mine is not None and mine.job == job_id
    queue.renew(store.engine, "a", [old], 0.0)
    new = queue.claim_next(store.engine, "b", 60.0)
    assert new is not None
    with pytest.raises(queue.LeaseLost):
        capacity.claim_capacity(store.engine, ["h1"], most_room("vm-stale"), old)
    with pytest.raises(queue.LeaseLost):
        capacity.release_capacity(store.engine, mine.id, old)
    assert [c.instance for c in capacity.claims(store.engine, "h1")] == ["vm-a"]
    assert capacity.release_capacity(store.engine, mine.id, new)
    assert capacity.claims(store.engine) == []


def test_a_placement_waits_for_the_one_deciding_on_its_host(db_url: str) -> None:
    """While one placement is deciding, another on the same host cannot read what is held
    there: it decides after the first claim committed, and sees it."""
    JobStore.open(db_url).close()
    first_engine, second_engine = make_engine(db_url), make_engine(db_url)
    first_inside, second_inside = threading.Event(), threading.Event()
    seen_by_second: list[int] = []

    def slow(held: Mapping[str, Usage]) -> Choice | None:
        first_inside.set()
        second_inside.wait(1.0)  # set only if the second gets in while this one decides
        return most_room("first")(held)

    def second(held: Mapping[str, Usage]) -> Choice | None:
        second_inside.set()
        seen_by_second.append(held["h1"].memory_mib)
        return None

    first = threading.Thread(
        target=capacity.claim_capacity, args=(first_engine, ["h1"], slow))
    try:
        first.start()
        assert first_inside.wait(30)
        capacity.claim_capacity(second_engine, ["h1"], second)
        first.join()
        assert seen_by_second == [ASK]
    finally:
        first.join()
        first_engine.dispose()
        second_engine.dispose()
