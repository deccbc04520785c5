"""Which hosts this server watches: the ones whose host lease it holds (issue 10 §2).

Every ``ttl``/3 seconds ``WatchLeases`` renews the leases it holds and acquires the free
or expired ones (``store/hostleases.py``), starting a watcher per host taken and stopping
at once the watcher of a host lost. A held host's watcher is also stopped when its lease
lapses on this process's monotonic clock (no renewal through within ``ttl`` of sending
it): the database may be unreachable, or this process paused, and another server may
take the host as soon as the lease expires on the database's clock. At stop, it stops
every watcher, then releases its leases so another server takes the hosts at its next
round instead of after the TTL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from sqlalchemy import Engine

from control_server.errors import HostplaneError
from control_server.store import hostleases

log = logging.getLogger("hostplane.serve")

LEASE_TTL = 30.0  # seconds: a dead server's hosts are watched again within this
LEASE_TTL_ENV = "HOSTPLANE_LEASE_TTL"


def lease_ttl() -> float:
    """The lease TTL: ``HOSTPLANE_LEASE_TTL`` (seconds) if set, else ``LEASE_TTL``."""
    raw = os.environ.get(LEASE_TTL_ENV, "").strip()
    if not raw:
        return LEASE_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = 0.0
    if not ttl > 0 or ttl == float("inf"):
        raise HostplaneError(f"{LEASE_TTL_ENV}={raw!r}: not a number of seconds above 0")
    return ttl


class HostWatching(Protocol):
    """Starts and stops one host's watcher (``host_events.HostWatchers``)."""

    def start(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    async def close(self) -> None: ...


_Round = tuple[list[str], float, list[str], float]  # lost, renew sent, got, acquire sent


class WatchLeases:
    """Watch the hosts this server holds the lease of; ``run`` until cancelled."""

    def __init__(self, engine: Engine, server_id: Callable[[], str], hosts: Iterable[str],
                 ttl: float, watchers: HostWatching) -> None:
        self.engine = engine
        self.server_id = server_id  # read each round: the heartbeat may register again
        self.hosts = sorted(set(hosts))
        self.ttl = ttl
        self.every = ttl / 3
        self.watchers = watchers
        self.held: dict[str, float] = {}  # host -> monotonic deadline of its lease
        self.watching: set[str] = set()
        self._as: str | None = None  # the server id the leases are held under
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._call: asyncio.Future[_Round] | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except Exception:  # the store may be back at the next round
                    log.exception("host leases: renewing or acquiring failed")
                await asyncio.sleep(self.every)
        finally:
            await self._shutdown()

    async def round(self) -> None:
        """Renew what is held, acquire what is free, start and stop watchers to match."""
        server = self.server_id()
        moved: list[str] = []  # held under the old id: watched on if taken again below
        if self._as is not None and server != self._as:
            log.warning("host leases: this server registered again as %s; releasing the "
                        "leases held as %s to take them again", server, self._as)
            await asyncio.to_thread(hostleases.release, self.engine, self._as)
            moved = sorted(self.held)
            self.held.clear()  # their lapse timers still run until they are held again
        self._as = server
        sent = sorted(self.held)
        self._call = asyncio.ensure_future(asyncio.to_thread(self._db_round, server, sent))
        # Shielded: a stop during the round waits for it (_shutdown), so that what its
        # acquire took is released too.
        lost, renewed_at, got, acquired_at = await asyncio.shield(self._call)
        self._call = None
        gone = [h for h in lost + moved if h not in got]  # not taken back at once
        if gone:
            log.warning("host leases lost (another server watches them now, or they "
                        "expired): %s; their watchers stopped", ", ".join(gone))
        for host in gone:
            self._drop(host)
        for host in sent:
            if host not in lost:
                self._hold(host, renewed_at + self.ttl)
        if got:
            log.info("host leases taken: %s; watching their hypervisor events",
                     ", ".join(got))
        for host in got:
            self._hold(host, acquired_at + self.ttl)

    def _db_round(self, server: str, held: list[str]) -> _Round:
        renew_sent = time.monotonic()
        lost = hostleases.renew(self.engine, server, held, self.ttl)
        kept = set(held) - set(lost)
        acquire_sent = time.monotonic()
        got = hostleases.acquire(self.engine, server,
                                 [h for h in self.hosts if h not in kept], self.ttl)
        return lost, renew_sent, got, acquire_sent

    def _hold(self, host: str, deadline: float) -> None:
        """The lease of ``host`` is surely ours until ``deadline``: watch it until then."""
        self.held[host] = deadline
        timer = self._timers.pop(host, None)
        if timer is not None:
            timer.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            self._lapse(host)
            return
        self._timers[host] = asyncio.get_running_loop().call_later(left, self._lapse, host)
        if host not in self.watching:
            self.watching.add(host)
            self.watchers.start(host)

    def _lapse(self, host: str) -> None:
        """No renewal of ``host``'s lease came through in time: stop watching it (the next
        round's renewal says whether it is still ours)."""
        self._timers.pop(host, None)
        if host in self.watching:
            log.warning("host lease of %s not renewed within %gs: its watcher stopped",
                        host, self.ttl)
            self.watching.discard(host)
            self.watchers.stop(host)

    def _drop(self, host: str) -> None:
        self.held.pop(host, None)
        timer = self._timers.pop(host, None)
        if timer is not None:
            timer.cancel()
        if host in self.watching:
            self.watching.discard(host)
            self.watchers.stop(host)

    async def _shutdown(self) -> None:
        """Stop every watcher, then release every lease this server holds."""
        for host in list(self.held):
            self._drop(host)
        await self.watchers.close()
        if self._call is not None:  # a round cut short: its acquire may still commit
            await asyncio.wait({self._call}, timeout=self.ttl)
        if self._as is None:
            return
        try:
            await asyncio.to_thread(hostleases.release, self.engine, self._as)
        except Exception:  # they expire after the TTL anyway
            log.exception("host leases: releasing those of %s failed", self._as)
