"""``WatchLeases`` on a real SQLite store, with stand-in watchers that record what they are
told: one server watches each host, a stop releases them to the other, a lost or lapsed
lease stops its watcher, a server registered again keeps its hosts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from control_server.errors import HostplaneError
from control_server.service import watchers as watchers_mod
from control_server.service.watchers import WatchLeases, lease_ttl
from control_server.store import hostleases
from control_server.store.jobstore import JobStore

HOSTS = ["h1", "h2", "h3"]


class Recorder:
    """Stands in for ``host_events.HostWatchers``."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.closed = False

    def start(self, name: str) -> None:
        assert name not in self.running
        self.running.add(name)
        self.log.append(("start", name))

    def stop(self, name: str) -> None:
        assert name in self.running
        self.running.discard(name)
        self.log.append(("stop", name))

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = JobStore.open(f"sqlite:///{tmp_path / 'hostplane.db'}")
    yield store.engine
    store.close()


def leases(engine: Engine, server: str, ttl: float = 60.0) -> tuple[WatchLeases, Recorder]:
    recorder = Recorder()
    return WatchLeases(engine, lambda: server, HOSTS, ttl, recorder), recorder


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(check) or not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_one_server_watches_each_host_and_a_stop_hands_them_on(engine: Engine) -> None:
    a, a_watch = leases(engine, "a", ttl=0.9)
    b, b_watch = leases(engine, "b", ttl=0.9)
    task_a = asyncio.create_task(a.run())
    await until(lambda: a_watch.running == set(HOSTS))
    task_b = asyncio.create_task(b.run())
    await asyncio.sleep(1.0)  # a few rounds of both: a renews, b finds nothing free
    assert a_watch.running == set(HOSTS) and b_watch.running == set()
    assert hostleases.holders(engine) == dict.fromkeys(HOSTS, "a")
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    assert a_watch.running == set() and a_watch.closed
    await until(lambda: b_watch.running == set(HOSTS), timeout=2.0)  # released: no TTL wait
    assert hostleases.holders(engine) == dict.fromkeys(HOSTS, "b")
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
    assert hostleases.holders(engine) == {}


async def test_a_lost_lease_stops_its_watcher_at_once(engine: Engine) -> None:
    a, a_watch = leases(engine, "a", ttl=60.0)
    await a.round()
    assert a_watch.running == set(HOSTS)
    # h2's lease expires and server b takes it (as after a pause of a past the TTL)
    assert hostleases.renew(engine, "a", ["h2"], ttl=0.0) == []
    assert hostleases.acquire(engine, "b", ["h2"], 60.0) == ["h2"]
    await a.round()
    assert a_watch.running == {"h1", "h3"} and a_watch.log[-1] == ("stop", "h2")
    assert sorted(a.held) == ["h1", "h3"]


async def test_a_lease_not_renewed_in_time_stops_its_watcher(engine: Engine,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    a, a_watch = leases(engine, "a", ttl=0.6)
    await a.round()
    assert a_watch.running == set(HOSTS)
    started = time.monotonic()

    def unreachable(*_args: object) -> list[str]:
        raise OSError("the database is unreachable")

    monkeypatch.setattr(hostleases, "renew", unreachable)
    task = asyncio.create_task(a.run())
    await until(lambda: a_watch.running == set(), timeout=5.0)
    assert 0.5 < time.monotonic() - started < 1.5  # at the TTL, not later
    assert hostleases.holders(engine) == {}  # expired in the store too: takeable
    monkeypatch.undo()  # the database is back: the leases nobody took are taken back
    await until(lambda: a_watch.running == set(HOSTS), timeout=5.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_server_registered_again_keeps_its_hosts(engine: Engine) -> None:
    ids = ["a-1"]
    recorder = Recorder()
    a = WatchLeases(engine, lambda: ids[0], HOSTS, 60.0, recorder)
    await a.round()
    ids[0] = "a-2"
    await a.round()
    assert hostleases.holders(engine) == dict.fromkeys(HOSTS, "a-2")
    assert recorder.running == set(HOSTS)
    assert [what for what, _ in recorder.log] == ["start"] * 3  # watched on, no restart


def test_the_ttl_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(watchers_mod.LEASE_TTL_ENV, raising=False)
    assert lease_ttl() == watchers_mod.LEASE_TTL == 30.0
    monkeypatch.setenv(watchers_mod.LEASE_TTL_ENV, "2.5")
    assert lease_ttl() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(watchers_mod.LEASE_TTL_ENV, bad)
        with pytest.raises(HostplaneError, match="HOSTPLANE_LEASE_TTL"):
            lease_ttl()
