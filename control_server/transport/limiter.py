"""Handshake limiting and retry, separate from the run's overall concurrency (--forks).

sshd drops handshakes past ``MaxStartups`` (default 10:30:100); a burst of 30 hosts behind
one sshd, or a bastion, would otherwise see random "connection lost" failures.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """Raised by a handshake attempt that may succeed when tried again (dropped by sshd)."""


class HandshakeLimiter:
    def __init__(self, limit: int = 16, retries: int = 5, base_delay: float = 0.1) -> None:
        self._sem = asyncio.Semaphore(max(1, limit))
        self.retries = retries
        self.base_delay = base_delay
        self.retried = 0  # how many handshakes had to be retried (reported in debug output)

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` under the limit, retrying ``Retryable`` with jittered backoff."""
        for tries in range(self.retries + 1):
            async with self._sem:
                try:
                    return await attempt()
                except Retryable:
                    if tries == self.retries:
                        raise
            self.retried += 1
            # Full jitter: spreads a burst of dropped handshakes instead of re-synchronising it.
            await asyncio.sleep(random.uniform(0, self.base_delay * (2**tries)))
        raise AssertionError("unreachable")
