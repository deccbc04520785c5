"""Handshake limiting and retry, separate from the run's overall concurrency (--forks).

sshd drops handshakes past ``MaxStartups`` (default 10:30:100): it counts the unauthenticated
connections of one sshd, whatever address they came to. A fixed limit is either too high for
a strict sshd (hosts end "unreachable" after a burst of drops) or too low for a fleet of
many sshds. So each sshd endpoint gets its own window, sized like TCP's congestion window
(AIMD): halved on a drop, grown by one on each success, never above the global limit.
Endpoints found to be one sshd (same host key) share a window; see ``same_server``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class Retryable(Exception):
    """Raised by a handshake attempt that sshd dropped (reset / closed before auth): worth
    another try, and a sign that the endpoint takes fewer handshakes at once."""


@dataclass
class Window:
    """One sshd's handshake window: ``size`` handshakes in flight at most."""

    size: int
    active: int = 0
    epoch: int = 0  # bumped on each decrease: one halving per window of attempts, as TCP
    drops: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    def idle_queue(self) -> bool:
        while self.waiters and self.waiters[0].done():  # cancelled waiters
            self.waiters.popleft()
        return not self.waiters

    def wake(self, everyone: bool = False) -> None:
        free = len(self.waiters) if everyone else self.size - self.active
        while free > 0 and self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1


class HandshakeLimiter:
    def __init__(
        self,
        limit: int = 16,
        retries: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 2.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limit = max(1, limit)
        self._sem = asyncio.Semaphore(self.limit)
        self.retries = retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._windows: dict[str, Window] = {}
        self._server: dict[str, str] = {}  # endpoint -> sshd identity (host key)
        self.retried = 0  # how many handshakes had to be retried (reported in debug output)

    def window(self, endpoint: str) -> Window:
        key = self._server.get(endpoint, endpoint)
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = Window(self.limit)
        return win

    def same_server(self, endpoint: str, identity: str) -> None:
        """``endpoint`` is answered by the sshd known as ``identity`` (its host key): one
        sshd listening on several addresses gets one window, since MaxStartups is its
        total. Slots taken on the endpoint's old window drain into nothing (a brief
        overshoot at most)."""
        key = "server " + identity
        if endpoint in self._server:
            return  # the first identity wins: known_hosts may list several keys of one sshd
        old = self.window(endpoint)
        self._server[endpoint] = key
        if key not in self._windows:
            self._windows[key] = old  # the first endpoint's history becomes the server's
        elif old is not self._windows[key]:
            old.wake(everyone=True)  # its waiters re-queue on the server's window

    async def _acquire(self, endpoint: str) -> tuple[Window, int]:
        while True:
            win = self.window(endpoint)
            if win.active < win.size and win.idle_queue():
                win.active += 1
                return win, win.epoch
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            win.waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                win.wake()  # a wake-up meant for us must not be lost
                raise
            win = self.window(endpoint)
            if win.active < win.size:
                win.active += 1
                win.wake()  # more room may be left (the window grew)
                return win, win.epoch

    def _release(self, win: Window, epoch: int, dropped: bool | None) -> None:
        """``dropped``: True halves the window, False grows it, None leaves it be."""
        win.active -= 1
        if dropped is None:
            pass
        elif dropped:
            win.drops += 1
            if epoch == win.epoch:  # not already halved for this round of attempts
                win.size = max(1, win.size // 2)
                win.epoch += 1
        else:
            win.size = min(self.limit, win.size + 1)
        win.wake()

    def backoff(self, tries: int) -> float:
        # Full jitter: spreads a burst of dropped handshakes instead of re-synchronising it.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**tries)))

    async def run(self, attempt: Callable[[], Awaitable[T]], endpoint: str = "") -> T:
        """Run ``attempt`` under ``endpoint``'s window and the global limit, retrying
        ``Retryable`` with jittered exponential backoff. Any other exception (refused,
        timeout, auth, host key) is raised at once.

        Bounded twice: ``retries`` drops of a lone handshake (window 1: the sshd refuses
        even one at a time), and ``4 * (retries + 1)`` attempts in all. Drops while the
        window is wider are AIMD probing the sshd's capacity, not the host's failure."""
        strikes = 0
        for tries in range(4 * (self.retries + 1)):
            win, epoch = await self._acquire(endpoint)
            lone = win.size == 1
            dropped: bool | None = True
            try:
                async with self._sem:
                    result = await attempt()
                dropped = False
                return result
            except Retryable:
                strikes += lone
                if strikes > self.retries or tries == 4 * (self.retries + 1) - 1:
                    raise
            except BaseException:
                dropped = None  # refused, timeout, auth...: says nothing of MaxStartups
                raise
            finally:
                self._release(win, epoch, dropped)
            self.retried += 1
            await self._sleep(self.backoff(tries))
        raise AssertionError("unreachable")
