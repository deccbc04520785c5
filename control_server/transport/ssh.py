"""The ``asyncssh`` transport (the default): one connection per host, reused by all channels.

Honours ``~/.ssh/config`` (User, Port, IdentityFile, ProxyJump...), keys and ssh-agent, and
verifies host keys against known_hosts unless told otherwise. This is the only module
that imports asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from pathlib import Path
from typing import Any

import asyncssh

from control_server.errors import AuthError, ConnectError, HostKeyError, TransportError
from control_server.inventory import ConnectionTarget
from control_server.transport.base import (
    READ_CHUNK,
    ChannelResult,
    LineHandler,
    LineSplitter,
    Transport,
    TransportSettings,
)
from control_server.transport.endpoint import sshd_identity
from control_server.transport.limiter import HandshakeLimiter, Retryable
from control_server.transport.ssh_options import HostSSHOptions, host_key_policy

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


@functools.lru_cache(maxsize=64)
def _known_hosts(path: str, mtime_ns: int) -> asyncssh.SSHKnownHosts:
    """A known_hosts file parsed once per version: re-reading it for every connection makes
    a fleet's handshakes quadratic in the fleet's size."""
    return asyncssh.read_known_hosts(path)


@functools.lru_cache(maxsize=64)
def _client_key(path: str, mtime_ns: int) -> asyncssh.SSHKey:
    return asyncssh.read_private_key(path)


def _parsed_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    return _known_hosts(str(path), path.stat().st_mtime_ns)


class AsyncSSHTransport(Transport):
    name = "ssh"

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
        self._conn: asyncssh.SSHClientConnection | None = None
        self.policy, self.known_hosts = host_key_policy(
            self._opts, settings.host_key_checking, settings.known_hosts)

    # --- connecting -------------------------------------------------------------------

    def _base_options(self) -> dict[str, Any]:
        t = self.target
        opts: dict[str, Any] = {
            "host": t.address,
            "connect_timeout": self.settings.connect_timeout,
            "keepalive_interval": self.settings.keepalive_interval,
            "keepalive_count_max": 3,
        }
        if t.port is not None:
            opts["port"] = t.port
        if t.user is not None:
            opts["username"] = t.user
        if t.key_file:
            key_path = Path(os.path.expanduser(t.key_file))
            try:
                opts["client_keys"] = [_client_key(str(key_path), key_path.stat().st_mtime_ns)]
            except (OSError, asyncssh.KeyImportError):
                opts["client_keys"] = [str(key_path)]  # encrypted or odd: asyncssh decides
        config = self._opts.ssh_config or self.settings.ssh_config
        if config is not None:
            opts["config"] = [str(config.expanduser())]
        return opts

    def _known_hosts_file(self) -> Path:
        return (self.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()

    def _trusted_keys(self) -> list[asyncssh.SSHKey]:
        path = self._known_hosts_file()
        if not path.is_file():
            return []
        try:
            known = _parsed_known_hosts(path)
            trusted = asyncssh.match_known_hosts(
                known, self.target.address, self.target.address, self.target.port or 22
            )[0]
        except (OSError, ValueError):
            return []
        return list(trusted)

    async def connect(self) -> None:
        if self._conn is not None:
            return
        opts = self._base_options()
        learn = False
        if self.policy == "off":
            opts["known_hosts"] = None
        elif self.policy == "accept-new" and not self._trusted_keys():
            opts["known_hosts"] = None
            learn = True
        elif self.known_hosts is not None:
            if not self.known_hosts.is_file():
                raise HostKeyError(
                    f"host key unknown: known_hosts file {self.known_hosts} does not exist",
                    self.target.host,
                )
            try:
                opts["known_hosts"] = _parsed_known_hosts(self.known_hosts)
            except (OSError, ValueError) as exc:
                raise HostKeyError(f"cannot read {self.known_hosts}: {exc}",
                                   self.target.host) from None
        endpoint, recorded = sshd_identity(self.target.address, self.target.port,
                                           opts.get("config"), self.settings.known_hosts)
        if recorded is not None:  # known_hosts tells which sshd answers: share its window
            self._limiter.same_server(endpoint, recorded)
        try:
            self._conn = await self._limiter.run(lambda: self._handshake(opts), endpoint)
        except Retryable as exc:
            raise ConnectError(
                f"{exc} (gave up after {self._limiter.retries} retries)", self.target.host
            ) from None
        server_key = self._conn.get_server_host_key()
        if server_key is not None:  # one sshd on many addresses has one MaxStartups
            self._limiter.same_server(endpoint, server_key.export_public_key().split()[1].decode())
        if learn:
            self._learn_host_key()

    async def _handshake(self, opts: dict[str, Any]) -> asyncssh.SSHClientConnection:
        host = self.target.host
        try:
            return await asyncssh.connect(**opts)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._host_key_error(exc) from None
        except asyncssh.PermissionDenied as exc:
            user = opts.get("username", "(ssh config / current user)")
            raise AuthError(f"authentication failed as {user}: {exc.reason}", host) from None
        except (asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError) as exc:
            # sshd past MaxStartups closes the socket mid-handshake: worth another try.
            raise Retryable(f"connection dropped during handshake: {exc}") from exc
        except asyncssh.DisconnectError as exc:
            raise ConnectError(f"disconnected during handshake: {exc.reason}", host) from None
        except TimeoutError:
            raise ConnectError(
                f"connect timed out after {self.settings.connect_timeout:g} s "
                f"({self.target.address}:{self.target.port or 22})",
                host,
            ) from None
        except ConnectionRefusedError:
            raise ConnectError(
                f"connection refused ({self.target.address}:{self.target.port or 22})", host
            ) from None
        except OSError as exc:
            raise ConnectError(f"cannot connect: {exc.strerror or exc}", host) from None
        except (asyncssh.Error, ValueError) as exc:
            raise ConnectError(f"ssh error: {exc}", host) from None

    def _host_key_error(self, exc: asyncssh.HostKeyNotVerifiable) -> HostKeyError:
        path = self._known_hosts_file()
        if self._trusted_keys():
            return HostKeyError(
                f"host key mismatch: the key offered by {self.target.address} does not match "
                f"the one recorded in {path} (possible man-in-the-middle, or the host was "
                "rebuilt: remove the old key with ssh-keygen -R)",
                self.target.host,
            )
        return HostKeyError(
            f"host key unknown: {self.target.address} is not in {path} "
            "(add it, or use --host-key-checking accept-new)",
            self.target.host,
        )

    def _learn_host_key(self) -> None:
        assert self._conn is not None
        key = self._conn.get_server_host_key()
        if key is None:
            return
        port = self.target.port or 22
        name = self.target.address if port == 22 else f"[{self.target.address}]:{port}"
        line = f"{name} {key.export_public_key().decode().strip()}\n"
        path = self._known_hosts_file()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with path.open("a", encoding="ascii") as fh:
            fh.write(line)

    # --- channels ---------------------------------------------------------------------

    async def run(self, command: str, stdin: bytes, on_line: LineHandler) -> ChannelResult:
        if self._conn is None:
            await self.connect()
        assert self._conn is not None
        try:
            proc = await self._conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(f"cannot open a channel: {exc}", self.target.host) from None
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        try:
            try:
                proc.stdin.write(stdin)
                proc.stdin.write_eof()
            except (asyncssh.Error, BrokenPipeError, ConnectionResetError):
                pass  # the command exited without reading its input (executor missing)
            splitter = LineSplitter(on_line)
            while chunk := await proc.stdout.read(READ_CHUNK):
                splitter.feed(chunk)
            splitter.close()
            completed = await proc.wait()
        except asyncio.CancelledError:
            proc.close()  # closing the channel is the executor's "controller gone" signal
            raise
        except (asyncssh.Error, OSError) as exc:
            stderr_task.cancel()
            raise TransportError(f"connection lost: {exc}", self.target.host) from None
        stderr = await stderr_task
        sig = completed.exit_signal[0] if completed.exit_signal else None
        if sig and not sig.startswith("SIG") and hasattr(signal, "SIG" + sig):
            sig = "SIG" + sig
        return ChannelResult(completed.exit_status, stderr, sig)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(asyncssh.Error, OSError):
                await self._conn.wait_closed()
            self._conn = None

    def abort(self) -> None:
        """Drop the connection at once (tests use it to cut a sequence mid-way)."""
        if self._conn is not None:
            self._conn.abort()
