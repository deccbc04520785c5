"""The runner's upload, reconnect and reattach paths, on an in-memory fake transport.

``FakeHost`` plays a host: it has (or lacks) the executor, "runs" a request by journaling
its events, and can cut the connection part way (the executor goes on, detached, and its
journal gets every event), refuse reconnects, or die without an end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from control_server import runner
from control_server.delivery import Delivery
from control_server.errors import ConnectError, TransportError
from control_server.events import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, Collector, EventStream
from control_server.executor_bundle import Bundle
from control_server.inventory import ConnectionTarget
from control_server.runner import HostPlan, RunOptions, execute
from control_server.transport.base import ChannelResult, LineHandler, Transport, TransportSettings
from host_executor import protocol


@dataclass
class FakeHost:
    has_executor: bool = False
    cut_after: int | None = None  # events sent before the connection drops
    refuse_connects: int = 0  # reconnects refused after the first connect
    dies: bool = False  # the executor dies after its first step: no ``done``
    journals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    uploads: int = 0
    connects: int = 0
    sequences: int = 0

    def execute(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        self.sequences += 1
        events: list[dict[str, Any]] = [{"event": "hello", "protocol": 1, "id": request["id"]}]
        for i, step in enumerate(request["steps"]):
            events.append({"event": "step_start", "index": i, "name": step["name"]})
            events.append({"event": "step_end", "index": i, "name": step["name"],
                           "status": "changed", "rc": 0})
            if self.dies:
                self.journals[request["id"]] = events
                return events
        events.append({"event": "done", "id": request["id"], "status": "changed", "exit": 0})
        self.journals[request["id"]] = events
        return events


class FakeTransport(Transport):
    name = "fake"

    def __init__(self, host: FakeHost) -> None:
        target = ConnectionTarget("h1", "h1", None, None, None, "fake", "python3", False, None)
        super().__init__(target, TransportSettings())
        self.host = host
        self.open = False

    async def connect(self) -> None:
        if self.open:
            return
        self.host.connects += 1
        if self.host.connects > 1 and self.host.refuse_connects > 0:
            self.host.refuse_connects -= 1
            raise ConnectError("connection refused", "h1")
        self.open = True

    async def close(self) -> None:
        self.open = False

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        if not self.open:
            raise TransportError("not connected", "h1")
        if "hostplane-upload" in command:
            self.host.uploads += 1
            self.host.has_executor = True
            return ChannelResult(0, b"")
        if not self.host.has_executor:
            on_line(protocol.MISSING_MARKER.encode() + b"\n")
            return ChannelResult(protocol.EXIT_MISSING, b"")
        if "--follow" in command:
            return self._follow(command, on_line)
        events = self.host.execute(json.loads(stdin))
        for sent, event in enumerate(events):
            if self.host.cut_after is not None and sent == self.host.cut_after:
                self.host.cut_after = None
                self.open = False
                raise TransportError("connection lost: reset by peer", "h1")
            on_line(protocol.encode_event(event))
        return ChannelResult(0 if events[-1]["event"] == "done" else None, b"")

    def _follow(self, command: str, on_line: LineHandler) -> ChannelResult:
        rid = command.split("--journal")[1].split()[0].strip("'")
        events = self.host.journals[rid]
        for event in events:
            on_line(protocol.encode_event(event))
        if events[-1]["event"] != "done":
            on_line(protocol.encode_event({"event": "error", "code": "executor_died",
                                           "message": "gone", "exit": 1}))
            return ChannelResult(1, b"")
        return ChannelResult(0, b"")


def _plan(host: FakeHost, steps: int = 3) -> HostPlan:
    bundle = Bundle(Path("/nonexistent"), "0123456789abcdef", b"zip")
    request = protocol.make_request("rid-1", [
        {"name": f"s{i}", "action": "command", "args": {"argv": ["true"]}} for i in range(steps)])
    return HostPlan("h1", FakeTransport(host), Delivery(bundle), request)


async def _run(host: FakeHost, **options: Any) -> tuple[Any, Collector]:
    sink = Collector()
    result = await execute([_plan(host)], RunOptions(**options), EventStream([sink]))
    return result.hosts["h1"], sink


def _executor_events(sink: Collector, kind: str) -> list[dict[str, Any]]:
    return [e.event for e in sink.events
            if getattr(e, "kind", "") == "executor" and e.event["event"] == kind]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "REATTACH_FIRST_DELAY", 0.01)
    monkeypatch.setattr(runner, "REATTACH_MAX_DELAY", 0.02)


async def test_missing_executor_is_uploaded_once_then_run() -> None:
    host = FakeHost()
    finished, _ = await _run(host)
    assert finished.status == HOST_OK and finished.uploaded
    assert (host.uploads, host.sequences) == (1, 1)
    again, _ = await _run(host)
    assert again.status == HOST_OK and not again.uploaded and host.uploads == 1


async def test_cut_mid_sequence_is_reattached_and_each_event_seen_once() -> None:
    host = FakeHost(has_executor=True, cut_after=2)  # after hello and the first step_start
    finished, sink = await _run(host)
    assert finished.status == HOST_OK and finished.error_kind == "reattached"
    assert host.sequences == 1  # followed, never sent again
    assert [e["index"] for e in _executor_events(sink, "step_end")] == [0, 1, 2]
    assert len(_executor_events(sink, "done")) == 1
    assert finished.counts.changed == 3


async def test_reconnect_is_retried_with_backoff() -> None:
    host = FakeHost(has_executor=True, cut_after=3, refuse_connects=2)
    finished, _ = await _run(host)
    assert finished.status == HOST_OK and finished.error_kind == "reattached"
    assert host.connects == 4  # the first, two refused, the one that reattached


async def test_not_reattached_in_time_is_still_running_not_a_result() -> None:
    host = FakeHost(has_executor=True, cut_after=2, refuse_connects=10_000)
    finished, _ = await _run(host, reattach_timeout=0.1)
    assert finished.status == HOST_UNREACHABLE and finished.error_kind == runner.LOST_RUNNING
    assert "still running" in (finished.error or "")


async def test_an_executor_that_died_is_no_result() -> None:
    host = FakeHost(has_executor=True, cut_after=2, dies=True)
    finished, _ = await _run(host)
    assert finished.status == HOST_FAILED and finished.error_kind == runner.EXECUTOR_DIED
    assert "jobs resume" in (finished.error or "")


async def test_lost_before_hello_is_unreachable_and_not_followed() -> None:
    host = FakeHost(has_executor=True, cut_after=0)
    finished, _ = await _run(host)
    assert finished.status == HOST_UNREACHABLE and host.connects == 1
