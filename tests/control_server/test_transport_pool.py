"""serve's connection pool (``transport.pool``) on an in-memory fake transport: reuse,
sharing, the channel bound, loss and reconnect, discard, idle close, settings as keys,
shutdown; and the runner's reattach path through a pooled handle."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from control_server import runner
from control_server.delivery import Delivery
from control_server.errors import ChannelOpenError, ConnectError, TransportError
from control_server.events import HOST_OK, Collector, EventStream
from control_server.executor_bundle import Bundle
from control_server.inventory import ConnectionTarget
from control_server.runner import HostPlan, RunOptions, execute
from control_server.transport.base import ChannelResult, LineHandler, Transport, TransportSettings
from control_server.transport.pool import PooledTransport, TransportPool
from host_executor import protocol

TARGET = ConnectionTarget("h1", "10.0.0.1", None, None, None, "ssh", "python3", False, None)
SETTINGS = TransportSettings()


@dataclass
class FakeServer:
    """What the fake connections of one host share: counts, and knobs to break them."""

    opened: int = 0
    closed: int = 0
    refuse: bool = False
    running: int = 0
    most_running: int = 0
    conns: list[FakeConn] = field(default_factory=list)
    journals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cut_after: int | None = None  # events a sequence sends before its connection drops


class FakeConn(Transport):
    name = "fake"

    def __init__(self, server: FakeServer) -> None:
        super().__init__(TARGET, SETTINGS)
        self.server = server
        self.open = False
        self.lost = False  # dropped under us (the keepalive or a reset said so)
        self.silent = False  # dead without anyone knowing: opening a channel fails

    async def connect(self) -> None:
        if self.server.refuse:
            raise ConnectError("connection refused", "h1")
        self.server.opened += 1
        self.server.conns.append(self)
        self.open = True

    async def close(self) -> None:
        if self.open:
            self.open = False
            self.server.closed += 1

    def alive(self) -> bool:
        return self.open and not self.lost

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        if not self.alive() or self.silent:
            raise ChannelOpenError("cannot open a channel: connection lost", "h1")
        self.server.running += 1
        self.server.most_running = max(self.server.most_running, self.server.running)
        try:
            if command.startswith("sleep"):
                await asyncio.sleep(float(command.split()[1]))
                return ChannelResult(0, b"")
            return self._executor(command, stdin, on_line)
        finally:
            self.server.running -= 1

    def _executor(self, command: str, stdin: bytes, on_line: LineHandler) -> ChannelResult:
        if "--follow" in command:
            rid = command.split("--journal")[1].split()[0].strip("'")
            for event in self.server.journals[rid]:
                on_line(protocol.encode_event(event))
            return ChannelResult(0, b"")
        request = json.loads(stdin)
        events: list[dict[str, Any]] = [{"event": "hello", "protocol": 1, "id": request["id"]}]
        for i, step in enumerate(request["steps"]):
            events += [{"event": "step_start", "index": i, "name": step["name"]},
                       {"event": "step_end", "index": i, "name": step["name"],
                        "status": "changed", "rc": 0}]
        events.append({"event": "done", "id": request["id"], "status": "changed", "exit": 0})
        self.server.journals[request["id"]] = events
        for sent, event in enumerate(events):
            if self.server.cut_after is not None and sent == self.server.cut_after:
                self.server.cut_after = None
                self.lost = True  # the whole connection goes, as a killed sshd session
                raise TransportError("connection lost: reset by peer", "h1")
            on_line(protocol.encode_event(event))
        return ChannelResult(0, b"")


def _handle(pool: TransportPool, server: FakeServer, key: Any = "h1") -> PooledTransport:
    return pool.handle(key, TARGET, SETTINGS, lambda: FakeConn(server))


async def _sleep_channel(handle: Transport, seconds: float = 0.0) -> ChannelResult:
    return await handle.run(f"sleep {seconds}", b"", lambda _line: None)


async def test_sequential_jobs_reuse_one_connection() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    for _ in range(3):
        handle = _handle(pool, server)
        await handle.connect()
        await _sleep_channel(handle)
        await handle.close()  # the end of a run: released, not closed
    assert (server.opened, server.closed) == (1, 0)
    assert pool.stats()["connections"] == 1
    await pool.close()
    assert server.closed == 1
    assert pool.stats()["connections"] == 0


async def test_concurrent_jobs_share_it_and_channels_are_bounded() -> None:
    pool, server = TransportPool(idle_close=60, max_channels=3), FakeServer()
    handles = [_handle(pool, server) for _ in range(10)]
    await asyncio.gather(*(h.connect() for h in handles))
    assert server.opened == 1  # one handshake for ten jobs arriving together
    await asyncio.gather(*(_sleep_channel(h, 0.02) for h in handles))
    assert server.most_running == 3  # the rest queued
    await asyncio.gather(*(h.close() for h in handles))
    await pool.close()


async def test_a_lost_connection_is_replaced_on_the_next_connect() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    first = _handle(pool, server)
    await first.connect()
    await first.close()
    server.conns[0].lost = True  # died while idle (the keepalive noticed)
    second = _handle(pool, server)
    await second.connect()
    await _sleep_channel(second)
    assert server.opened == 2 and server.conns[0].open is False
    await second.close()
    await pool.close()


async def test_a_silently_dead_connection_costs_one_retry_not_an_error() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    handle = _handle(pool, server)
    await handle.connect()
    server.conns[0].silent = True  # looks alive, but no channel opens on it
    result = await _sleep_channel(handle)
    assert result.exit_status == 0 and server.opened == 2
    await handle.close()
    await pool.close()
    assert server.closed == 2


async def test_discard_retires_the_connection_others_finish_on_it() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    a, b = _handle(pool, server), _handle(pool, server)
    await a.connect()
    await b.connect()
    busy = asyncio.create_task(_sleep_channel(b, 0.05))
    await asyncio.sleep(0)
    await a.discard()  # a's run lost it (as the runner thinks): a fresh one next time
    await a.connect()
    assert server.opened == 2
    assert server.conns[0].open  # b's channel still runs on the old one
    assert (await busy).exit_status == 0
    await b.close()  # its last user gone: the retired connection closes
    await asyncio.sleep(0)
    assert not server.conns[0].open and server.conns[1].open
    await a.close()
    await pool.close()


async def test_idle_connections_are_closed_after_idle_close() -> None:
    pool, server = TransportPool(idle_close=0.05), FakeServer()
    handle = _handle(pool, server)
    await handle.connect()
    await handle.close()
    await asyncio.sleep(0.02)
    again = _handle(pool, server)
    await again.connect()  # in time: still warm, and the idle clock starts over
    await again.close()
    assert server.opened == 1
    await asyncio.sleep(0.1)
    assert server.closed == 1 and pool.stats()["connections"] == 0
    late = _handle(pool, server)
    await late.connect()
    assert server.opened == 2
    await late.close()
    await pool.close()


async def test_idle_close_zero_closes_after_each_job() -> None:
    pool, server = TransportPool(idle_close=0), FakeServer()
    handle = _handle(pool, server)
    await handle.connect()
    await handle.close()
    await asyncio.sleep(0)
    assert server.closed == 1


async def test_changed_settings_key_a_new_connection_and_retire_the_old() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    old = _handle(pool, server, key=("h1", "strict"))
    await old.connect()
    await old.close()
    new = _handle(pool, server, key=("h1", "accept-new"))
    await new.connect()
    await asyncio.sleep(0)
    assert server.opened == 2 and not server.conns[0].open
    await new.close()
    await pool.close()


def test_settings_and_files_are_in_the_key(tmp_path: Path) -> None:
    pool = TransportPool()
    known = tmp_path / "known_hosts"
    known.write_text("")
    strict = TransportSettings(host_key_checking="strict", known_hosts=known)
    one = pool.transport(TARGET, {}, strict)
    two = pool.transport(TARGET, {}, strict)
    other = pool.transport(TARGET, {}, TransportSettings(host_key_checking="accept-new",
                                                         known_hosts=known))
    assert isinstance(one, PooledTransport) and isinstance(two, PooledTransport)
    assert isinstance(other, PooledTransport)
    assert one._key == two._key != other._key
    known.write_text("# edited\n")
    import os

    os.utime(known, ns=(1, 1))
    assert pool.transport(TARGET, {}, strict)._key != one._key  # type: ignore[attr-defined]
    local = ConnectionTarget("l1", "l1", None, None, None, "local", "python3", False, None)
    assert not isinstance(pool.transport(local, {}, strict), PooledTransport)


async def test_a_refused_connect_is_an_error_and_leaves_nothing_behind() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer(refuse=True)
    handle = _handle(pool, server)
    with pytest.raises(ConnectError):
        await handle.connect()
    assert pool.stats() == {"connections": 0, "holders": 0, "opened": 0}
    server.refuse = False
    await handle.connect()
    await handle.close()
    await pool.close()


async def test_after_close_nothing_is_handed_out() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer()
    await pool.close()
    with pytest.raises(TransportError):
        await _handle(pool, server).connect()


@pytest.fixture
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "REATTACH_FIRST_DELAY", 0.01)
    monkeypatch.setattr(runner, "REATTACH_MAX_DELAY", 0.02)


def _plan(handle: Transport, rid: str) -> HostPlan:
    bundle = Bundle(Path("/nonexistent"), "0123456789abcdef", b"zip")
    request = protocol.make_request(rid, [
        {"name": f"s{i}", "action": "command", "args": {"argv": ["true"]}} for i in range(3)])
    return HostPlan("h1", handle, Delivery(bundle), request)


@pytest.mark.usefixtures("_fast_backoff")
async def test_runner_reattaches_through_a_pooled_handle_then_reuses_the_new_one() -> None:
    pool, server = TransportPool(idle_close=60), FakeServer(cut_after=2)
    sink = Collector()
    result = await execute([_plan(_handle(pool, server), "rid-1")], RunOptions(),
                           EventStream([sink]))
    finished = result.hosts["h1"]
    assert finished.status == HOST_OK and finished.error_kind == "reattached"
    assert server.opened == 2 and not server.conns[0].open  # the lost one really closed
    again = await execute([_plan(_handle(pool, server), "rid-2")], RunOptions(),
                          EventStream([Collector()]))
    assert again.hosts["h1"].status == HOST_OK and again.hosts["h1"].error_kind is None
    assert server.opened == 2  # the next job rode the reattached connection
    await pool.close()
