"""The control side of the host event dispatcher: one ``--watch-domains`` channel per host.

Each ``HostWatcher`` keeps a channel open on its host's connection; when the host goes away
it reconnects with jittered backoff. Every (re)connect starts with the host's full domain
list, so an event missed while disconnected never leaves a wrong state behind: consumers
reconcile from ``domain_list`` and apply ``domain_event``s on top.

Events reach ``on_event(host, event)`` as plain dicts: the executor's own (``domain_list``,
``domain_event``, ``heartbeat``) plus ``watch_connected`` / ``watch_disconnected`` (with
``error``) made here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from control_server import executor_bundle
from control_server.delivery import Delivery
from control_server.errors import ExecutorError, TransportError
from control_server.inventory import Host, connection_target
from control_server.transport import HandshakeLimiter, Transport, TransportSettings, open_transport

if TYPE_CHECKING:
    from control_server.transport.pool import TransportPool

HostEventHandler = Callable[[str, dict[str, Any]], None]


@dataclass
class InstanceView:
    """The domains of every host as the events tell them (reconciled on each connect)."""

    domains: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def apply(self, host: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "domain_list":
            self.domains[host] = {d["name"]: dict(d) for d in event.get("domains", [])}
        elif kind == "domain_event":
            domains = self.domains.setdefault(host, {})
            name = str(event.get("domain"))
            if event.get("state") == "absent" or event.get("kind") == "undefined":
                domains.pop(name, None)
            else:
                entry = domains.setdefault(name, {"name": name, "uuid": event.get("uuid")})
                entry["state"] = event.get("state")
                entry["last_event"] = f"{event.get('kind')}/{event.get('detail')}"
                entry["time"] = event.get("time")


class HostWatcher:
    def __init__(
        self,
        host: Host,
        settings: TransportSettings,
        limiter: HandshakeLimiter,
        on_event: HostEventHandler,
        heartbeat: float = 5.0,
        max_backoff: float = 30.0,
        bundle: executor_bundle.Bundle | None = None,
        pool: TransportPool | None = None,
    ) -> None:
        self.host = host
        self.pool = pool
        self.settings = settings
        self.limiter = limiter
        self.on_event = on_event
        self.heartbeat = heartbeat
        self.max_backoff = max_backoff
        target = connection_target(host)
        self.delivery = Delivery(bundle or executor_bundle.build_bundle(), python=target.python,
                                 become=target.become, become_user=target.become_user)
        self.uri = str(host.vars.get("libvirt_uri") or "qemu:///system")
        self.connected = False

    def _transport(self) -> Transport:
        if self.pool is not None:  # serve: the watch channel rides the host's connection
            return self.pool.transport(connection_target(self.host), self.host.vars,
                                       self.settings)
        return open_transport(connection_target(self.host), self.host.vars, self.settings,
                              self.limiter)

    def _emit(self, event: dict[str, Any]) -> None:
        if event.get("event") == "domain_list" and not self.connected:
            self.connected = True
            self.on_event(self.host.name, {"event": "watch_connected", "time": time.time()})
        self.on_event(self.host.name, event)

    async def _session(self) -> str:
        transport = self._transport()
        try:
            await transport.connect()
            args = ["--watch-domains", self.uri, "--heartbeat", f"{self.heartbeat:g}"]
            outcome = await self.delivery.stream(transport, args, self._emit)
            errors = [e.get("message") for e in outcome.events if e.get("event") == "error"]
            return "; ".join(str(e) for e in errors) or f"watch ended (exit {outcome.exit_status})"
        except (TransportError, ExecutorError) as exc:
            return exc.reason
        finally:
            await transport.close()

    async def run(self) -> None:
        """Watch until cancelled; reconnect with jittered exponential backoff."""
        delay = 1.0
        while True:
            started = time.monotonic()
            why = await self._session()
            if self.connected or time.monotonic() - started > 60:
                delay = 1.0  # it was up for a while: start the backoff over
            self.connected = False
            self.on_event(self.host.name, {"event": "watch_disconnected", "error": why,
                                           "retry_in": round(delay, 1), "time": time.time()})
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.max_backoff)


class HostWatchers:
    """A ``HostWatcher`` task per host, started and stopped one host at a time (serve's host
    leases say which hosts this server watches; ``service/watchers.py``)."""

    def __init__(
        self,
        hosts: Iterable[Host],
        on_event: HostEventHandler,
        settings: TransportSettings | None = None,
        heartbeat: float = 5.0,
        pool: TransportPool | None = None,
    ) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.on_event = on_event
        self.settings = settings or TransportSettings()
        self.limiter = HandshakeLimiter(self.settings.handshake_limit,
                                        self.settings.handshake_retries)
        self.heartbeat = heartbeat
        self.pool = pool
        self._bundle: executor_bundle.Bundle | None = None  # built at the first start
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def running(self) -> set[str]:
        return set(self._tasks)

    def start(self, name: str) -> None:
        """Watch host ``name`` (a fresh watcher: it starts with the full domain list)."""
        if name in self._tasks:
            return
        if self._bundle is None:
            self._bundle = executor_bundle.build_bundle()  # once for the fleet
        watcher = HostWatcher(self.hosts[name], self.settings, self.limiter, self.on_event,
                              self.heartbeat, bundle=self._bundle, pool=self.pool)
        self._tasks[name] = asyncio.create_task(watcher.run(), name=f"watch-{name}")

    def stop(self, name: str) -> None:
        """Stop watching ``name`` now (its channel closes as the task ends)."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every watcher and wait until they have ended."""
        for name in list(self._tasks):
            self.stop(name)
        await asyncio.gather(*self._stopping, return_exceptions=True)


async def watch_hosts(
    hosts: Iterable[Host],
    on_event: HostEventHandler,
    settings: TransportSettings | None = None,
    heartbeat: float = 5.0,
    pool: TransportPool | None = None,
) -> None:
    """Watch every host until cancelled (``pool``: on serve's warm connections)."""
    settings = settings or TransportSettings()
    limiter = HandshakeLimiter(settings.handshake_limit, settings.handshake_retries)
    bundle = executor_bundle.build_bundle()  # once for the fleet, not per host
    watchers = [HostWatcher(h, settings, limiter, on_event, heartbeat, bundle=bundle,
                            pool=pool)
                for h in hosts]
    await asyncio.gather(*(w.run() for w in watchers))
