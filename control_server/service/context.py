"""One serve process: its settings, the store, the inventory, the fleet state, the jobs."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from control_server import api
from control_server.errors import HostplaneError
from control_server.inventory import Inventory
from control_server.service.bus import Bus
from control_server.service.hostevents import HostEventLog
from control_server.service.jobs_runner import JobRunner
from control_server.service.state import FleetState
from control_server.service.tokens import TokenStore
from control_server.store import servers
from control_server.store.jobstore import JobStore
from control_server.transport.pool import TransportPool

log = logging.getLogger("hostplane.serve")
DEFAULT_LISTEN = "127.0.0.1:8421"
MAX_BODY = 1024 * 1024
# Well inside servers.STALE_AFTER: two heartbeats can be missed (a slow store, a loaded
# machine) before other servers take this one for gone.
HEARTBEAT_EVERY = servers.STALE_AFTER / 3


@dataclass(frozen=True)
class ServeConfig:
    inventory_sources: tuple[str, ...]
    db_url: str
    host: str = "127.0.0.1"
    port: int = 8421
    run: api.RunConfig = field(default_factory=api.RunConfig)
    facts_interval: float | None = 300.0  # None or 0: only at start-up
    gather_facts: bool = True
    max_body: int = MAX_BODY
    drain: float = 10.0  # seconds running jobs get to end when serve stops
    cwd: Path = field(default_factory=Path.cwd)
    watch: bool = True  # one --watch-domains listener per host (hypervisor events)
    watch_heartbeat: float = 5.0
    idle_close: float = 300.0  # a warm connection nobody used for this long is closed
    channels_per_host: int = 8  # channels at once on a host's connection (MaxSessions 10)


class Service:
    """Built before the server listens (so bad input is reported as an error, not logged
    by uvicorn); ``start``/``stop`` run in the server's event loop."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.inventory = Inventory.load(list(config.inventory_sources), config.cwd)
        self.store = JobStore.open(config.db_url)
        # Before anything else touches the store: on SQLite a second live server is refused
        # here (SecondServerOnSQLite, printed by the CLI), before it marks or serves a thing.
        try:
            self.server = servers.register(self.store.engine)
        except BaseException:
            self.store.close()
            raise
        # Jobs a killed serve left running: interrupted, for `hostplane jobs resume`.
        self.interrupted = self.store.mark_interrupted_on_startup()
        self.bus = Bus()
        self.host_events = HostEventLog(self.store.engine, socket.gethostname())
        self.state = FleetState(self.store.engine, self.inventory, self.bus, self.host_events)
        self.state.load()
        self.tokens = TokenStore(self.store.engine)
        self._runner: JobRunner | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        # One connection per host for the server's lifetime, shared by every job.
        self.pool = TransportPool(config.idle_close, config.channels_per_host)

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise RuntimeError("the service is not started")
        return self._runner

    async def start(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        if self.interrupted:
            log.warning("jobs interrupted by a previous stop: %s (hostplane jobs resume ID)",
                        ", ".join(map(str, self.interrupted)))
        self._runner = JobRunner(self.store, self.inventory, self.state, self.bus,
                                 self.config.run, self.pool)
        if self.config.gather_facts:
            self._runner.start_facts(self.config.facts_interval)
        else:
            self._runner.facts_ready.set()
        if self.config.watch:
            self._start_watch()
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")

    async def _heartbeat_loop(self) -> None:
        """Keep this server's registration fresh; a row taken for dead is made again."""
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            try:
                if not await asyncio.to_thread(servers.heartbeat, self.store.engine,
                                               self.server.id):
                    log.warning("server %s was taken for gone (no heartbeat for %gs): "
                                "registering again", self.server.id, servers.STALE_AFTER)
                    self.server = await asyncio.to_thread(servers.register,
                                                          self.store.engine)
            except HostplaneError as exc:  # another server took the SQLite store meanwhile
                log.error("server %s: %s", self.server.id, exc)
            except Exception:  # the store may be back at the next beat
                log.exception("heartbeat of server %s failed", self.server.id)

    def _start_watch(self) -> None:
        """The host event listener: each host's domain events, reconciled on reconnect,
        watched by the one server holding the host's lease (cancelling the task stops the
        watchers and releases the leases)."""
        from control_server.host_events import HostWatchers
        from control_server.service.watchers import WatchLeases, lease_ttl

        hosts = [h for h in self.inventory.hosts("all") if not h.implicit]
        watchers = HostWatchers(hosts, self.state.apply_watch_event, self.config.run.transport,
                                self.config.watch_heartbeat, self.pool)
        leases = WatchLeases(self.store.engine, lambda: self.server.id,
                             [h.name for h in hosts], lease_ttl(), watchers)
        self._watch_task = asyncio.create_task(leases.run(), name="host-event-listener")

    async def stop(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        if self._runner is not None:
            await self._runner.stop(self.config.drain)
        await self.pool.close()  # after the jobs: their executors detach, as before
        await asyncio.to_thread(self.state.close)
        await asyncio.to_thread(servers.unregister, self.store.engine, self.server.id)
        self.store.close()
