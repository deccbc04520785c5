"""The fan-out runner: sends each host its request over its own connection, in parallel.

``--forks`` bounds how many hosts run at once; SSH handshakes are limited separately (see
``transport.limiter``). ``--serial`` splits the hosts into batches; after each batch,
``--max-fail-percentage`` (or a batch where every host failed) stops the run. Results are
published as events the moment they arrive; the runner never prints anything itself.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from control_server.delivery import Delivery, SequenceOutcome
from control_server.errors import ExecutorError, InputError, TransportError
from control_server.events import (
    HOST_FAILED,
    HOST_OK,
    HOST_SKIPPED,
    HOST_UNREACHABLE,
    EventStream,
    ExecutorEvent,
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepCounts,
)
from control_server.transport import Transport
from host_executor import protocol

Redactor = Callable[[Any], Any]
# A host's outcome is not known yet (the job stays resumable): still running after a lost
# connection, or its executor died before the sequence's end.
LOST_RUNNING = "connection_lost"
EXECUTOR_DIED = "executor_died"
RESUMABLE_KINDS = frozenset((LOST_RUNNING, EXECUTOR_DIED))
REATTACH_FIRST_DELAY = 0.5
REATTACH_MAX_DELAY = 10.0


@dataclass
class HostPlan:
    """Everything needed to run one host, rendered and validated before anything is sent."""

    host: str
    transport: Transport
    delivery: Delivery
    request: dict[str, Any]
    redact: Redactor = field(default=lambda obj: obj)


@dataclass(frozen=True)
class RunOptions:
    forks: int = 20
    serial: str | None = None  # "N" hosts or "N%" per batch
    max_fail_percentage: float | None = None
    check: bool = False
    diff: bool = False
    timeout: float | None = None  # per host, for the whole sequence
    on_disconnect: str = "detach"  # or "abort": a lost connection cancels the sequence
    reattach_timeout: float = 120.0  # how long to try to reattach after a lost connection


@dataclass(frozen=True)
class RunResult:
    run_id: str
    hosts: dict[str, HostFinished]
    exit_code: int
    duration: float
    stopped_early: str | None = None

    @property
    def failed(self) -> list[str]:
        return [h for h, r in self.hosts.items() if r.status == HOST_FAILED]

    @property
    def unreachable(self) -> list[str]:
        return [h for h, r in self.hosts.items() if r.status == HOST_UNREACHABLE]


def exit_code_for(results: Sequence[HostFinished]) -> int:
    """Ansible's: 2 when a host failed, 4 when one was unreachable; 2 wins if both."""
    statuses = {r.status for r in results}
    if HOST_FAILED in statuses:
        return 2
    if HOST_UNREACHABLE in statuses:
        return 4
    return 0


def batches(count: int, serial: str | None) -> list[int]:
    """Batch sizes for ``--serial N`` or ``N%`` (at least one host per batch)."""
    if count == 0:
        return []
    if not serial:
        return [count]
    text = serial.strip()
    try:
        size = math.floor(count * float(text[:-1]) / 100) if text.endswith("%") else int(text)
    except ValueError:
        raise InputError(f"--serial {serial!r}: expected a number of hosts or a percentage") from None
    size = max(1, min(count, size))
    out = [size] * (count // size)
    if count % size:
        out.append(count % size)
    return out


class _HostRun:
    """Runs one host and turns its executor events into counts and a final result."""

    def __init__(self, plan: HostPlan, stream: EventStream, timeout: float | None,
                 reattach_timeout: float = 120.0) -> None:
        self.plan = plan
        self.stream = stream
        self.timeout = timeout
        self.reattach_timeout = reattach_timeout
        self.counts = StepCounts()
        self.failed_steps: list[dict[str, Any]] = []
        self.seen: set[tuple[str, int | None]] = set()
        self.hello = False

    def on_event(self, raw: dict[str, Any]) -> None:
        event = self.plan.redact(raw)
        key = (str(event.get("event")), event.get("index"))
        if key in self.seen and key[0] in ("step_start", "step_end", "done", "hello"):
            return  # replayed from the journal after a reconnect
        self.seen.add(key)
        if event.get("event") == "hello":
            self.hello = True
        if event.get("event") == "step_end":
            self.counts = self.counts.add(str(event.get("status")))
            if event.get("status") == "failed":
                self.failed_steps.append(
                    {k: event.get(k) for k in ("index", "name", "action", "rc", "msg", "stderr")}
                )
        self.stream.emit(ExecutorEvent(self.plan.host, event))

    def _finish(self, status: str, start: float, **kw: Any) -> HostFinished:
        return HostFinished(
            host=self.plan.host,
            status=status,
            counts=self.counts,
            duration=time.monotonic() - start,
            failed_steps=tuple(self.failed_steps),
            **kw,
        )

    async def run(self) -> HostFinished:
        start = time.monotonic()
        self.stream.emit(HostStarted(self.plan.host))
        transport = self.plan.transport
        try:
            await transport.connect()
        except TransportError as exc:
            return self._finish(HOST_UNREACHABLE, start, error=exc.reason, error_kind=exc.kind)
        try:
            outcome = await asyncio.wait_for(self._sequence(), self.timeout)
        except TimeoutError:
            return self._finish(
                HOST_FAILED, start, error=f"timed out after {self.timeout:g} s", error_kind="timeout"
            )
        except ExecutorError as exc:
            return self._finish(HOST_FAILED, start, error=exc.reason, error_kind="executor")
        except TransportError as exc:
            return await self._recover(exc, start)
        ended = outcome.done is not None or any(e.get("event") == "error" for e in outcome.events)
        if outcome.exit_status is None and not ended:
            lost = TransportError("connection lost before the sequence ended", self.plan.host)
            return await self._recover(lost, start)
        if self.hello and not ended:  # the executor went without its end: the journal says why
            gone = TransportError(f"the executor ended without a result (exit "
                                  f"{outcome.exit_status})", self.plan.host)
            return await self._recover(gone, start)
        return self._from_outcome(outcome, start)

    async def _sequence(self) -> SequenceOutcome:
        return await self.plan.delivery.run(self.plan.transport, self.plan.request, self.on_event)

    async def _recover(self, exc: TransportError, start: float) -> HostFinished:
        """The connection died mid-sequence. The executor goes on alone (it detached):
        reconnect with backoff and follow its journal to the end, then report the real
        outcome. A journal without its end is never a result."""
        if not self.hello:
            return self._finish(HOST_UNREACHABLE, start, error=exc.reason, error_kind=exc.kind)
        request_id = str(self.plan.request["id"])
        deadline = time.monotonic() + self.reattach_timeout
        delay, last = REATTACH_FIRST_DELAY, exc.reason
        while True:
            try:
                outcome = await self._follow(request_id)
                break
            except TransportError as again:
                last = again.reason
            except ExecutorError as again:
                return self._finish(HOST_FAILED, start, error_kind="executor",
                                    error=f"connection lost ({exc.reason}); the journal could "
                                          f"not be followed: {again.reason}")
            if time.monotonic() + delay > deadline:
                return self._finish(
                    HOST_UNREACHABLE, start, error_kind=LOST_RUNNING,
                    error=f"connection lost ({exc.reason}), still running: not reattached "
                          f"within {self.reattach_timeout:g} s ({last}); `jobs resume` follows "
                          "it to its end",
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, REATTACH_MAX_DELAY)
        return self._from_journal(outcome, exc, start)

    async def _follow(self, request_id: str) -> SequenceOutcome:
        transport = self.plan.transport
        await transport.discard()  # a lost connection: really dropped, even a pooled one
        await transport.connect()
        return await self.plan.delivery.follow_journal(transport, request_id, self.on_event)

    def _from_journal(self, outcome: SequenceOutcome, exc: TransportError,
                      start: float) -> HostFinished:
        died = next((e for e in outcome.events if e.get("event") == "error"
                     and e.get("code") == "executor_died"), None)
        done = outcome.done
        if done is None:
            why = died.get("message") if died else (outcome.stderr.strip()[-500:] or
                                                    "the journal ended without a result")
            return self._finish(HOST_FAILED, start, error_kind=EXECUTOR_DIED,
                                error=f"connection lost ({exc.reason}); executor died: {why}; "
                                      "`jobs resume` continues from the first unfinished step")
        rc = done.get("exit")
        note = f"connection lost ({exc.reason}); reattached and followed the journal to the end"
        if rc == protocol.EXIT_OK:
            return self._finish(HOST_OK, start, error=note, error_kind="reattached", executor_rc=rc)
        step = self.failed_steps[0] if self.failed_steps else {}
        why = f"step {step.get('name')!r} failed" if step else "a step failed"
        return self._finish(HOST_FAILED, start, error=f"{why} ({note})", error_kind="step",
                            executor_rc=rc if isinstance(rc, int) else None)

    def _from_outcome(self, outcome: SequenceOutcome, start: float) -> HostFinished:
        rc = outcome.exit_status
        kw: dict[str, Any] = {"executor_rc": rc, "uploaded": outcome.uploaded}
        if rc == protocol.EXIT_OK and outcome.done is not None:
            return self._finish(HOST_OK, start, **kw)
        errors = [e.get("message", "") for e in outcome.events if e.get("event") == "error"]
        if rc == protocol.EXIT_FAILED:
            step = self.failed_steps[0] if self.failed_steps else {}
            why = f"step {step.get('name')!r} failed" if step else "a step failed"
            return self._finish(HOST_FAILED, start, error=why, error_kind="step", **kw)
        if rc == protocol.EXIT_LOCK:
            why = "; ".join(errors) or "lock not acquired"
            return self._finish(HOST_FAILED, start, error=why, error_kind="lock", **kw)
        why = "; ".join(errors) or outcome.stderr.strip()[-2000:] or "no result from the executor"
        if outcome.noise and not errors:
            why += f" (unexpected output: {outcome.noise[0]!r})"
        return self._finish(HOST_FAILED, start, error=f"executor exit {rc}: {why}",
                            error_kind="executor", **kw)


async def execute(
    plans: Sequence[HostPlan], options: RunOptions, stream: EventStream, what: str = ""
) -> RunResult:
    """Run every plan; the result holds every host, including those never started."""
    run_id = uuid.uuid4().hex[:12]
    start = time.monotonic()
    stream.emit(RunStarted(run_id, what, tuple(p.host for p in plans), options.check))
    sem = asyncio.Semaphore(max(1, options.forks))
    results: dict[str, HostFinished] = {}
    stopped: str | None = None

    async def one(plan: HostPlan) -> None:
        async with sem:
            result = await _HostRun(plan, stream, options.timeout,
                                    options.reattach_timeout).run()
        results[plan.host] = result
        stream.emit(result)

    offset = 0
    try:
        for size in batches(len(plans), options.serial):
            batch = plans[offset : offset + size]
            offset += size
            await asyncio.gather(*(one(p) for p in batch))
            stopped = _should_stop([results[p.host] for p in batch], options)
            if stopped:
                break
    finally:
        await asyncio.gather(*(p.transport.close() for p in plans), return_exceptions=True)
    for plan in plans[offset:]:
        skipped = HostFinished(plan.host, HOST_SKIPPED, StepCounts(), 0.0, error=stopped)
        results[plan.host] = skipped
        stream.emit(skipped)
    ordered = {p.host: results[p.host] for p in plans}
    result = RunResult(
        run_id, ordered, exit_code_for(list(ordered.values())), time.monotonic() - start, stopped
    )
    stream.emit(RunFinished(run_id, tuple(ordered.values()), result.duration, result.exit_code,
                            stopped))
    return result


def _should_stop(batch: list[HostFinished], options: RunOptions) -> str | None:
    bad = sum(1 for r in batch if r.status in (HOST_FAILED, HOST_UNREACHABLE))
    if not batch or not bad:
        return None
    pct = 100.0 * bad / len(batch)
    if options.max_fail_percentage is not None and pct > options.max_fail_percentage:
        return (
            f"stopped: {bad} of {len(batch)} hosts in the batch failed ({pct:.0f}% > "
            f"--max-fail-percentage {options.max_fail_percentage:g})"
        )
    if bad == len(batch) and options.serial:
        return f"stopped: every host of the batch failed ({bad} of {len(batch)})"
    return None
