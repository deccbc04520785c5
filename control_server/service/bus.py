"""In-process wake-ups for the event streams: "something new was committed on TOPIC".

The store is the truth (SSE replays from it, by seq); the bus only says when to look
again, so a stream never misses an event it was not woken for: it takes its waiter
*before* reading the store, and a notification after the read still wakes it. Streams
also look again after a short timeout, which covers writers in other processes (a
``hostplane jobs resume``, another control server on a shared database).
"""

from __future__ import annotations

import asyncio

from control_server.events import RunEvent

HOST_EVENTS = "host-events"


def job_topic(job_id: int) -> str:
    return f"job-{job_id}"


class Waiter:
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    async def wait(self, timeout: float) -> bool:
        """True when woken, False on timeout."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Bus:
    """Topics of one-shot events; notify from the loop, or from any thread (threadsafe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._loop = loop

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def waiter(self, topic: str) -> Waiter:
        event = self._events.get(topic)
        if event is None:
            event = self._events[topic] = asyncio.Event()
        return Waiter(event)

    def notify(self, topic: str) -> None:
        """Wake everyone waiting on ``topic`` (call in the loop's thread)."""
        event = self._events.pop(topic, None)
        if event is not None:
            event.set()

    def notify_threadsafe(self, topic: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.notify, topic)


class CommitNotifier:
    """A sink that wakes a job's streams shortly after each burst of its events.

    The job store's sink commits from its own thread, a moment after ``emit``: waking a
    stream at ``emit`` would find nothing new. So the streams are woken ``DELAYS`` after
    the first event of a burst (one timer per burst); whatever commits later still wakes
    them through the later timer, or the streams' own poll."""

    DELAYS = (0.02, 0.25)

    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self._armed = False

    def emit(self, event: RunEvent) -> None:
        if self._armed:
            return
        self._armed = True
        loop = asyncio.get_running_loop()
        loop.call_later(self.DELAYS[0], self._fire, True)
        loop.call_later(self.DELAYS[1], self._fire, False)

    def _fire(self, rearm: bool) -> None:
        if rearm:
            self._armed = False
        self.bus.notify(self.topic)
