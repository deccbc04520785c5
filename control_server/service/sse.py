"""Server-Sent Events: a job's events by seq, and the host events by id.

Each event is ``id: <seq>``, ``event: <kind>``, ``data: <one line of JSON>``. A client that
reconnects sends the last id it saw (``Last-Event-ID``); the stream replays from the store
everything after it, then follows live: woken by the bus when serve commits an event, and
looking again every ``POLL`` seconds for writers in other processes. A job's stream ends
once the job is finished (or interrupted) and everything is sent; the host event stream
never ends. A comment line every ``KEEPALIVE`` seconds keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from control_server.service.bus import HOST_EVENTS, Bus, job_topic
from control_server.service.hostevents import HostEventLog
from control_server.store.jobstore import JobStore
from control_server.store.records import FINAL_STATES, INTERRUPTED, JOB_STATE_EVENT

POLL = 1.0
KEEPALIVE = 15.0
BATCH = 500
MEDIA_TYPE = "text/event-stream"
ENDED = FINAL_STATES | {INTERRUPTED}


def format_event(event_id: int, kind: str, data: dict[str, Any]) -> str:
    # json.dumps never writes a raw newline, so the data is always one line.
    body = json.dumps(data, default=str, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {kind}\ndata: {body}\n\n"


def parse_last_id(value: str | None) -> int:
    """The resume point from ``Last-Event-ID`` (0: from the start)."""
    if value is None or not value.strip():
        return 0
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("Last-Event-ID must be an event id (an integer)") from None
    if number < 0 or number > 2**62:
        raise ValueError("Last-Event-ID is out of range")
    return number


async def job_stream(store: JobStore, bus: Bus, job_id: int, state: str, after: int
                     ) -> AsyncIterator[str]:
    """The events of ``job_id`` after seq ``after``; ``state`` is the job's state when the
    stream was asked for (later ones come as ``job_state`` events)."""
    last = after
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        waiter = bus.waiter(job_topic(job_id))
        batch = await asyncio.to_thread(store.events, job_id, last, BATCH)
        for record in batch:
            if record.kind == JOB_STATE_EVENT:
                state = str(record.payload.get("state") or state)
            last = record.seq
            yield format_event(record.seq, record.kind, {
                "job_id": job_id, "seq": record.seq, "host": record.host,
                "kind": record.kind, "time": record.time, "payload": record.payload})
        if len(batch) == BATCH:
            continue
        if batch:
            quiet_since = time.monotonic()
        elif state in ENDED:
            return
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await waiter.wait(POLL)


async def host_event_stream(log: HostEventLog, bus: Bus, after: int, host: str | None
                            ) -> AsyncIterator[str]:
    last = after
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        waiter = bus.waiter(HOST_EVENTS)
        batch = await asyncio.to_thread(log.after, last, BATCH, host)
        for event in batch:
            last = event.id
            yield format_event(event.id, event.kind, {
                "id": event.id, "host": event.host, "kind": event.kind,
                "instance": event.instance, "time": event.time, "payload": event.payload,
                "received_by": event.received_by})
        if len(batch) == BATCH:
            continue
        if batch:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await waiter.wait(POLL)
