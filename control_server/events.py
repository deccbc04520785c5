"""Typed run events and the stream that carries them to sinks.

The runner only ever publishes events; the console, JSON Lines output, the job store and
the HTTP API's event stream are sinks that read them. Adding a sink never changes the
runner.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

HOST_OK = "ok"
HOST_FAILED = "failed"
HOST_UNREACHABLE = "unreachable"
HOST_SKIPPED = "skipped"  # not run: stopped by --max-fail-percentage or a cancel


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    what: str  # template name or the ad hoc command
    hosts: tuple[str, ...]
    check: bool
    kind: str = "run_start"
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class HostStarted:
    host: str
    kind: str = "host_start"
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ExecutorEvent:
    """One event the executor streamed, as received (already redacted)."""

    host: str
    event: dict[str, Any]
    kind: str = "executor"
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StepCounts:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, status: str) -> StepCounts:
        if status not in ("ok", "changed", "failed", "skipped"):
            return self
        return dataclasses.replace(self, **{status: getattr(self, status) + 1})


@dataclass(frozen=True)
class HostFinished:
    host: str
    status: str  # HOST_OK | HOST_FAILED | HOST_UNREACHABLE | HOST_SKIPPED
    counts: StepCounts
    duration: float
    error: str | None = None  # why it failed or was unreachable
    error_kind: str | None = None  # connect | auth | host_key | executor | step | ...
    failed_steps: tuple[dict[str, Any], ...] = ()
    executor_rc: int | None = None
    uploaded: bool = False
    kind: str = "host_end"
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    hosts: tuple[HostFinished, ...]
    duration: float
    exit_code: int
    stopped_early: str | None = None  # why --max-fail-percentage/--serial stopped the run
    kind: str = "run_end"
    time: float = field(default_factory=time.time)


RunEvent = RunStarted | HostStarted | ExecutorEvent | HostFinished | RunFinished


def event_to_dict(event: RunEvent) -> dict[str, Any]:
    """A plain JSON-able dict of an event (for JSON Lines, the store, the API): what
    ``dataclasses.asdict`` gives, without its per-value ``deepcopy`` (every sink converts
    every event, and a run's end carries all its hosts)."""
    out = _plain(event)
    assert isinstance(out, dict)
    return out


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)  # anything else: as asdict does


class Sink(Protocol):
    def emit(self, event: RunEvent) -> None: ...


class EventStream:
    """Fans every event out to all sinks, in order. A failing sink never stops the run."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)
        self.sink_errors: list[str] = []

    def add(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def emit(self, event: RunEvent) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # a broken sink must not lose other sinks' events
                self.sink_errors.append(f"{type(sink).__name__}: {exc}")


class Collector:
    """A sink that keeps every event in memory (tests, the library API)."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def emit(self, event: RunEvent) -> None:
        self.events.append(event)
