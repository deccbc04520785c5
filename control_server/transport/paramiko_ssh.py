"""The ``paramiko`` transport (optional extra), for sites that standardise on paramiko.

Same interface and guarantees as the asyncssh transport: one connection per host, host keys
verified against known_hosts by default (looked up as OpenSSH does, ``known_hosts.py``), ``~/.ssh/config`` honoured (HostName, Port, User,
IdentityFile; ProxyJump is refused: paramiko has no jump hosts). paramiko blocks, so its calls run in
worker threads and stdout lines are handed back to the event loop as they arrive. This is
the only module that imports paramiko.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import paramiko

from control_server.errors import AuthError, ConnectError, HostKeyError, TransportError
from control_server.inventory import ConnectionTarget
from control_server.transport import known_hosts as kh
from control_server.transport.base import (
    CANCEL_GRACE,
    STOP,
    ChannelResult,
    LineHandler,
    LineSplitter,
    ProgressHandler,
    Transport,
    TransportSettings,
    file_chunks,
)
from control_server.transport.limiter import HandshakeLimiter, Retryable
from control_server.transport.ssh_options import HostKeyPlan, HostSSHOptions, host_key_plan

_CHUNK = 1 << 16


class _CheckHostKey(paramiko.MissingHostKeyPolicy):
    """Every host key check of this transport: paramiko is given no known keys of its own,
    so it asks here for every connection, and the OpenSSH-exact lookup decides. A changed
    key is refused under strict and accept-new; accept-new learns a host with no entry."""

    def __init__(self, plan: HostKeyPlan, hostname: str, port: int, host: str) -> None:
        self.plan, self.host = plan, host
        self.name = plan.name(hostname, port)
        self.learned: str | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        if self.plan.policy == "off":
            return
        offered = f"{key.get_name()} {key.get_base64()}"
        found = kh.lookup(self.plan.files, self.name)
        revoked = found.revoked_entry(offered)
        if revoked is not None:
            raise HostKeyError(kh.revoked_message(found, revoked), self.host)
        if any(e.key == key.get_base64() for e in found.keys):
            return
        if found.known:
            raise HostKeyError(kh.mismatch_message(found, offered), self.host)
        if self.plan.policy != "accept-new":
            raise HostKeyError(kh.unknown_message(found), self.host)
        self.learned = offered

    def learn(self) -> None:
        if self.learned is not None and self.plan.learn_file:
            offered, self.learned = self.learned, None
            clash = kh.append(self.plan.learn_file, self.name, offered)
            if clash is not None:  # another connection just recorded a different key
                raise HostKeyError(kh.mismatch_message(clash, offered), self.host)


class ParamikoTransport(Transport):
    name = "paramiko"

    def __init__(
        self,
        target: ConnectionTarget,
        settings: TransportSettings,
        limiter: HandshakeLimiter,
        host_options: HostSSHOptions | None = None,
    ) -> None:
        super().__init__(target, settings)
        self._limiter = limiter
        self._opts = host_options or HostSSHOptions()
        self._client: paramiko.SSHClient | None = None
        self.host_keys = host_key_plan(target.address, target.port, target.user,
                                       self._opts, settings)
        self.policy = self.host_keys.policy

    def _ssh_config(self) -> dict[str, Any]:
        path = (self._opts.ssh_config or self.settings.ssh_config or Path("~/.ssh/config"))
        path = path.expanduser()
        if not path.is_file():
            return {}
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(self.target.address))

    def _connect_blocking(self) -> paramiko.SSHClient:
        cfg = self._ssh_config()
        t = self.target
        if self.host_keys.proxy_jump:
            raise ConnectError(f"ProxyJump {self.host_keys.proxy_jump} is not supported by "
                               "the paramiko transport (use -c ssh)", t.host)
        hostname = cfg.get("hostname", t.address)
        port = t.port or int(cfg.get("port", 22))
        check = _CheckHostKey(self.host_keys, hostname, port, t.host)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(check)
        key_files = [os.path.expanduser(t.key_file)] if t.key_file else [
            os.path.expanduser(k) for k in cfg.get("identityfile", [])
        ]
        try:
            client.connect(
                hostname=hostname,
                port=port,
                username=t.user or cfg.get("user") or None,
                key_filename=key_files or None,  # type: ignore[arg-type]  # str | list[str]
                timeout=self.settings.connect_timeout,
                banner_timeout=self.settings.connect_timeout,
                auth_timeout=self.settings.connect_timeout,
            )
            check.learn()
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(int(self.settings.keepalive_interval))
        return client

    async def _attempt(self) -> paramiko.SSHClient:
        host = self.target.host
        try:
            return await asyncio.to_thread(self._connect_blocking)
        except paramiko.AuthenticationException as exc:
            raise AuthError(f"authentication failed: {exc}", host) from None
        except TimeoutError:
            raise ConnectError(
                f"connect timed out after {self.settings.connect_timeout:g} s", host
            ) from None
        except ConnectionRefusedError:
            raise ConnectError(
                f"connection refused ({self.target.address}:{self.target.port or 22})", host
            ) from None
        except paramiko.SSHException as exc:
            raise Retryable(str(exc)) from exc
        except (EOFError, ConnectionResetError) as exc:
            raise Retryable(f"connection dropped during handshake: {exc}") from exc
        except OSError as exc:
            raise ConnectError(f"cannot connect: {exc.strerror or exc}", host) from None

    async def connect(self) -> None:
        if self._client is None:
            try:
                self._client = await self._limiter.run(self._attempt)
            except Retryable as exc:
                raise ConnectError(
                    f"{exc} (gave up after {self._limiter.retries} retries)", self.target.host
                ) from None

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        if self._client is None:
            await self.connect()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        stderr = bytearray()
        stop = threading.Event()
        channels: list[paramiko.Channel] = []

        def pump() -> int:
            assert self._client is not None
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise TransportError("connection lost", self.target.host)
            chan = transport.open_session()
            channels.append(chan)
            try:
                chan.exec_command(command)
                try:
                    chan.sendall(stdin)
                    if cancel_message is None:  # else stdin stays open for a cancel message
                        chan.shutdown_write()
                except OSError:
                    pass  # the command exited without reading its input (executor missing)
                def hand_over(line: bytes) -> None:
                    loop.call_soon_threadsafe(queue.put_nowait, line)

                splitter = LineSplitter(hand_over)
                while not stop.is_set():
                    if chan.recv_stderr_ready():
                        stderr.extend(chan.recv_stderr(_CHUNK))
                    data = chan.recv(_CHUNK)
                    if not data:
                        break
                    splitter.feed(data)
                splitter.close()
                status = chan.recv_exit_status()
                while chan.recv_stderr_ready():
                    stderr.extend(chan.recv_stderr(_CHUNK))
                return status
            finally:
                chan.close()
                loop.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.ensure_future(asyncio.to_thread(pump))
        try:
            while (line := await queue.get()) is not None:
                on_line(line)
            status = await task
        except asyncio.CancelledError:
            if cancel_message is not None and channels and STOP.explicit:
                await asyncio.shield(self._cancel(channels[0], cancel_message, queue, on_line))
            stop.set()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"connection lost: {exc}", self.target.host) from None
        return ChannelResult(status if status >= 0 else None, bytes(stderr))

    @staticmethod
    async def _cancel(chan: paramiko.Channel, message: bytes,
                      queue: asyncio.Queue[bytes | None], on_line: LineHandler) -> None:
        """Send the cancel message, then hand over the channel's last lines for a while."""
        async def drain() -> None:
            while (line := await queue.get()) is not None:
                on_line(line)

        with contextlib.suppress(OSError, paramiko.SSHException, TimeoutError):
            await asyncio.to_thread(chan.sendall, message)
            await asyncio.wait_for(drain(), CANCEL_GRACE)

    async def send_file(self, command: str, source: Path, offset: int = 0,
                        on_progress: ProgressHandler | None = None) -> ChannelResult:
        if self._client is None:
            await self.connect()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        sent = [0]

        def progressed(count: int) -> None:
            if on_progress is not None:
                on_progress(count)

        def pump() -> ChannelResult:
            assert self._client is not None
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise TransportError("connection lost", self.target.host)
            chan = transport.open_session()
            try:
                chan.exec_command(command)
                try:
                    for chunk in file_chunks(source, offset):
                        chan.sendall(chunk)  # blocks on the channel's window
                        sent[0] += len(chunk)
                        loop.call_soon_threadsafe(progressed, sent[0])
                    chan.shutdown_write()
                except OSError:
                    if not transport.is_active():
                        raise
                status = chan.recv_exit_status()
                stderr = bytearray()
                while chunk := chan.recv_stderr(_CHUNK):
                    stderr.extend(chunk)
                return ChannelResult(status if status >= 0 else None, bytes(stderr))
            finally:
                chan.close()

        try:
            return await asyncio.to_thread(pump)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"connection lost after {sent[0]} bytes of {source}: {exc}",
                                 self.target.host) from None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)
