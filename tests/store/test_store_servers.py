"""Servers sharing a store, with real processes: a second server on SQLite is refused
(naming PostgreSQL) and accepted on PostgreSQL; a lease holder SIGKILLed is taken over
after its TTL with a bigger token; one SIGSTOPped past its lease wakes up to its writes
refused, stops writing, and says so."""

from __future__ import annotations

import json
import os
import queue as lines
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import wait_for

from control_server.store import queue, servers
from control_server.store.jobstore import JobStore
from control_server.store.records import NewJob

HOLDER = Path(__file__).with_name("lease_holder.py")
REPO = HOLDER.parents[2]
HOLDER_TTL = 3.0


class Holder:
    """``lease_holder.py`` in its own process; its stdout lines as they come."""

    def __init__(self, url: str, job: int, mode: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), url, str(job), str(HOLDER_TTL), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: lines.Queue[str] = lines.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 60.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except lines.Empty:
            self.stop()
            raise AssertionError(f"lease holder said nothing; stderr: {self._stderr()}"
                                 ) from None
        self.seen.append(line)
        return line

    def claimed(self) -> dict[str, Any]:
        line = self.next_line()
        assert line.startswith("{"), f"{line!r}; stderr: {self._stderr()}"
        data: dict[str, Any] = json.loads(line)
        return data

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def job(store: JobStore) -> int:
    job_id = store.create_job(NewJob("adhoc", "uptime", "all", (("h1", "r1"),), "me"))
    queue.enqueue(store.engine, job_id)
    return job_id


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()


def test_a_second_server_is_refused_on_sqlite_and_welcome_on_postgresql(store: JobStore
                                                                        ) -> None:
    first = servers.register(store.engine)
    if store.engine.dialect.name == "sqlite":
        with pytest.raises(servers.SecondServerOnSQLite) as refused:
            servers.register(store.engine)
        message = str(refused.value)
        assert "PostgreSQL" in message and first.id in message and store.url in message
        assert [s.id for s in servers.live_servers(store.engine)] == [first.id]
        servers.unregister(store.engine, first.id)
        second = servers.register(store.engine)  # the first one stopped: welcome
        assert [s.id for s in servers.live_servers(store.engine)] == [second.id]
    else:
        second = servers.register(store.engine)
        assert {s.id for s in servers.live_servers(store.engine)} == {first.id, second.id}
    assert servers.heartbeat(store.engine, second.id)


def test_a_stale_heartbeat_is_a_gone_server(store: JobStore) -> None:
    gone = servers.register(store.engine)
    # No heartbeat within the (here zero) staleness window: gone, and its row removed.
    assert servers.live_servers(store.engine, stale_after=0.0) == []
    assert not servers.heartbeat(store.engine, gone.id)
    servers.register(store.engine)


def test_a_sigkilled_holder_is_taken_over_after_its_ttl(store: JobStore, job: int,
                                                        holders: list[Holder]) -> None:
    holder = Holder(store.url, job, "renew")
    holders.append(holder)
    held = holder.claimed()
    # Held and renewed: nobody else can claim it, and on SQLite no second server starts.
    assert queue.claim(store.engine, job, "b", 60.0) is None
    if store.engine.dialect.name == "sqlite":
        with pytest.raises(servers.SecondServerOnSQLite):
            servers.register(store.engine)

    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(30)
    taken = wait_for("the takeover of the killed holder's job",
                     lambda: queue.claim(store.engine, job, "b", 60.0))
    assert taken.token > held["token"] and taken.previous_owner == held["server"]
    # A dead server does not block the next one, on SQLite either.
    me = servers.register(store.engine)
    assert [s.id for s in servers.live_servers(store.engine)] == [me.id]


def test_a_paused_holder_wakes_up_to_its_writes_refused(store: JobStore, job: int,
                                                       holders: list[Holder]) -> None:
    holder = Holder(store.url, job, "write")
    holders.append(holder)
    held = holder.claimed()
    assert holder.next_line() == "idle"  # written and renewed; it sleeps before the next
    assert queue.claim(store.engine, job, "b", 60.0) is None  # held while it renews
    holder.proc.send_signal(signal.SIGSTOP)
    try:
        taken = wait_for("the takeover of the paused holder's job",
                         lambda: queue.claim(store.engine, job, "b", 60.0))
    finally:
        holder.proc.send_signal(signal.SIGCONT)
    assert taken.token > held["token"]
    # At most the write it had in flight when paused commits (before the claim); then the
    # next one is refused.
    line = holder.next_line()
    if line == "idle":
        line = holder.next_line()
    assert line.startswith(f"lease lost: job {job}: lease with fencing token "
                           f"{held['token']} lost (server b holds it now with token "
                           f"{taken.token})")
    assert holder.proc.wait(30) == 3
    written = store.events(job, kinds=("holder_write",))
    assert len(written) == holder.seen.count("idle")  # every refused write left nothing
