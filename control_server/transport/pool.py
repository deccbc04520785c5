"""Warm connections for ``hostplane serve``: one connection per host for the server's
lifetime, shared by every job's channels.

    pool = TransportPool(idle_close=300)
    transport = pool.transport(target, hostvars, settings)   # a Transport, as usual
    await transport.connect()   # the host's open connection, or one handshake
    await transport.run(...)    # one channel on it (at most ``max_channels`` at once)
    await transport.close()     # released: the connection stays open for the next job
    await pool.close()          # serve stopping: every connection closed

A request to a warm host so costs one channel, not a handshake. The connection is the
transport's own (``AsyncSSHTransport``, with its keepalive): a connection found lost
(closed, keepalive timeout) is replaced on the next ``connect``; a channel that cannot be
opened (nothing ran) is retried once on a fresh connection; ``discard`` (the runner's
reattach after a lost connection) retires it, so the follow channel gets a fresh one while
other jobs' channels on the old one end in their own time. A connection nobody has used
for ``idle_close`` seconds is closed. Several jobs on one host share the connection, at
most ``max_channels`` channels at once (sshd's MaxSessions is 10 by default); more wait.

The pool entry's key is everything a connection depends on: the host's connection target
and ssh options, the transport settings (host key policy, known_hosts, ssh_config...) and
the modification times of the ssh_config and known_hosts files given, so a changed setting
opens a new connection (the old one closes once unused). Only the ``ssh`` (asyncssh)
transport is pooled; ``local`` and ``paramiko`` get a transport of their own, as in the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

from control_server.errors import ChannelOpenError
from control_server.inventory import ConnectionTarget
from control_server.transport.base import (
    ChannelResult,
    LineHandler,
    ProgressHandler,
    Transport,
    TransportSettings,
)
from control_server.transport.limiter import HandshakeLimiter

log = logging.getLogger("hostplane.pool")

DEFAULT_IDLE_CLOSE = 300.0
DEFAULT_MAX_CHANNELS = 8  # under sshd's default MaxSessions (10)
POOLED_KINDS = ("ssh", "smart")

Factory = Callable[[], Transport]


class _Conn:
    """One open connection of an entry and how many handles hold it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.users = 0
        self.retired = False
        self.closing = False


class _Entry:
    """One host (under one set of settings): its current connection, its channel slots."""

    def __init__(self, key: Hashable, host: str, max_channels: int) -> None:
        self.key = key
        self.host = host
        self.current: _Conn | None = None
        self.lock = asyncio.Lock()  # one handshake at a time per host
        self.slots = asyncio.Semaphore(max(1, max_channels))
        self.idle_timer: asyncio.TimerHandle | None = None
        self.holders = 0  # handles holding any connection of the entry (retired too)


class TransportPool:
    """Connections by host, kept open between jobs (see the module's docstring)."""

    def __init__(self, idle_close: float = DEFAULT_IDLE_CLOSE,
                 max_channels: int = DEFAULT_MAX_CHANNELS) -> None:
        self.idle_close = idle_close
        self.max_channels = max_channels
        self._entries: dict[Hashable, _Entry] = {}
        self._limiters: dict[tuple[int, int], HandshakeLimiter] = {}
        self._lock = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.opened = 0  # connections opened (handshakes), for tests and benchmarks

    # --- handing out transports -------------------------------------------------------

    def limiter(self, settings: TransportSettings) -> HandshakeLimiter:
        """One handshake limiter for the server's lifetime (not one per job)."""
        key = (settings.handshake_limit, settings.handshake_retries)
        with self._lock:  # jobs are planned in worker threads
            if key not in self._limiters:
                self._limiters[key] = HandshakeLimiter(*key)
            return self._limiters[key]

    def transport(self, target: ConnectionTarget, hostvars: Mapping[str, Any],
                  settings: TransportSettings, override: str | None = None) -> Transport:
        """The transport ``open_transport`` would give, pooled when it is ``ssh``."""
        from control_server.transport import open_transport
        from control_server.transport.ssh_options import host_ssh_options

        limiter = self.limiter(settings)
        kind = override or target.connection
        if kind not in POOLED_KINDS:
            return open_transport(target, hostvars, settings, limiter, override)
        options = host_ssh_options(hostvars)
        key = (kind, target, options, settings,
               _stamps(settings, options.ssh_config, options.known_hosts_files))

        def factory() -> Transport:
            return open_transport(target, hostvars, settings, limiter, override)

        return self.handle(key, target, settings, factory)

    def handle(self, key: Hashable, target: ConnectionTarget, settings: TransportSettings,
               factory: Factory) -> PooledTransport:
        """A pooled transport for ``key``; ``factory`` makes a connection when needed."""
        return PooledTransport(self, key, target, settings, factory)

    # --- entries ----------------------------------------------------------------------

    def _entry(self, key: Hashable, host: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(key, host, self.max_channels)
            # The host under other settings (a changed file, another policy): those
            # connections are stale, closed as soon as nobody uses them.
            for other in list(self._entries.values()):
                if other.host == host and other.current is not None:
                    conn, other.current = other.current, None
                    self._retire(other, conn)
            self._entries[key] = entry
        return entry

    async def _acquire(self, key: Hashable, host: str, factory: Factory
                       ) -> tuple[_Entry, _Conn]:
        if self._closed:
            from control_server.errors import TransportError

            raise TransportError("the server is stopping", host)
        entry = self._entry(key, host)
        entry.holders += 1
        try:
            async with entry.lock:
                conn = entry.current
                if conn is not None and not conn.transport.alive():
                    log.info("%s: pooled connection lost, opening a new one", host)
                    entry.current = None
                    self._retire(entry, conn)
                    conn = None
                if conn is None:
                    transport = factory()
                    await transport.connect()
                    self.opened += 1
                    conn = entry.current = _Conn(transport)
                conn.users += 1
                if entry.idle_timer is not None:
                    entry.idle_timer.cancel()
                    entry.idle_timer = None
                return entry, conn
        except BaseException:
            entry.holders -= 1
            self._forget(entry)
            raise

    def _release(self, entry: _Entry, conn: _Conn) -> None:
        conn.users -= 1
        entry.holders -= 1
        if conn.users > 0:
            return
        if conn.retired or self._closed:
            self._close_later(conn)
        elif entry.current is conn:
            if self.idle_close <= 0:
                entry.current = None
                self._close_later(conn)
            else:
                loop = asyncio.get_running_loop()
                entry.idle_timer = loop.call_later(self.idle_close, self._idle, entry, conn)
        self._forget(entry)

    def _discard(self, entry: _Entry, conn: _Conn) -> None:
        """The connection was lost: no new channel goes on it."""
        if entry.current is conn:
            entry.current = None
            self._retire(entry, conn)

    def _retire(self, entry: _Entry, conn: _Conn) -> None:
        conn.retired = True
        if conn.users == 0 or not conn.transport.alive():
            self._close_later(conn)

    def _idle(self, entry: _Entry, conn: _Conn) -> None:
        entry.idle_timer = None
        if entry.current is conn and conn.users == 0:
            log.info("%s: closing the pooled connection, idle for %gs", entry.host,
                     self.idle_close)
            entry.current = None
            self._close_later(conn)
            self._forget(entry)

    def _forget(self, entry: _Entry) -> None:
        if entry.current is None and entry.holders == 0 and \
                self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    def _close_later(self, conn: _Conn) -> None:
        if conn.closing:
            return
        conn.closing = True
        task = asyncio.get_running_loop().create_task(self._close_conn(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_conn(conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            await conn.transport.close()

    # --- the server's view ------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Open connections, channel holders, connections opened so far."""
        return {"connections": sum(1 for e in self._entries.values() if e.current),
                "holders": sum(e.holders for e in self._entries.values()),
                "opened": self.opened}

    async def close(self) -> None:
        """Close every connection (serve stopping); later acquires fail."""
        self._closed = True
        for entry in list(self._entries.values()):
            if entry.idle_timer is not None:
                entry.idle_timer.cancel()
            if entry.current is not None:
                conn, entry.current = entry.current, None
                conn.retired = True
                self._close_later(conn)
        self._entries.clear()
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


class PooledTransport(Transport):
    """A job's handle on a pooled connection: ``close`` releases it, ``discard`` retires
    it (it was lost), ``connect`` takes the host's open connection (or opens one)."""

    name = "ssh (pooled)"

    def __init__(self, pool: TransportPool, key: Hashable, target: ConnectionTarget,
                 settings: TransportSettings, factory: Factory) -> None:
        super().__init__(target, settings)
        self._pool = pool
        self._key = key
        self._factory = factory
        self._held: tuple[_Entry, _Conn] | None = None

    async def connect(self) -> None:
        if self._held is not None and self._held[1].transport.alive() \
                and not self._held[1].retired:
            return
        if self._held is not None:  # lost meanwhile: let go of it, take a fresh one
            await self.discard()
        self._held = await self._pool._acquire(self._key, self.target.host, self._factory)

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        if self._held is None:
            await self.connect()
        assert self._held is not None
        entry, conn = self._held
        async with entry.slots:
            try:
                return await conn.transport.run(command, stdin, on_line, cancel_message)
            except ChannelOpenError:
                # Nothing ran: the connection is gone (or refuses channels). Once more
                # on a fresh one, so a job never pays for a connection that died idle.
                log.info("%s: no channel on the pooled connection, reconnecting",
                         self.target.host)
                await self.discard()
                await self.connect()
                assert self._held is not None
                return await self._held[1].transport.run(command, stdin, on_line,
                                                         cancel_message)

    async def send_file(self, command: str, source: Path, offset: int = 0,
                        on_progress: ProgressHandler | None = None) -> ChannelResult:
        if self._held is None:
            await self.connect()
        assert self._held is not None
        entry, conn = self._held
        async with entry.slots:
            return await conn.transport.send_file(command, source, offset, on_progress)

    async def close(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._pool._release(*held)

    async def discard(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._pool._discard(*held)
            self._pool._release(*held)

    def alive(self) -> bool:
        return self._held is not None and self._held[1].transport.alive()


def _stamps(settings: TransportSettings, host_config: Path | None,
            host_known: tuple[Path, ...]) -> tuple[tuple[str, int], ...]:
    """Modification times of the files a connection was set up from."""
    config = host_config or settings.ssh_config or Path("~/.ssh/config")
    files = [config, *host_known, *settings.extra_known_hosts]
    if settings.known_hosts is not None:
        files.append(settings.known_hosts)
    out = []
    for path in files:
        name = os.path.expanduser(str(path))
        try:
            out.append((name, os.stat(name).st_mtime_ns))
        except OSError:
            out.append((name, 0))
    return tuple(out)
