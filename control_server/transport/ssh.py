"""The ``asyncssh`` transport (the default): one connection per host, reused by all channels.

Honours ``~/.ssh/config`` (User, Port, IdentityFile, ProxyJump...), keys and ssh-agent, and
verifies host keys against known_hosts unless told otherwise, looked up as OpenSSH does
(``known_hosts.py``): a changed key is always refused, naming the line of the old one. This
is the only module that imports asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from pathlib import Path
from typing import Any

from control_server.transport.libfind import quick_find_library

with quick_find_library():  # asyncssh looks for liboqs at import: ldconfig runs otherwise
    import asyncssh

from control_server.errors import (
    AuthError,
    ChannelOpenError,
    ConnectError,
    HostKeyError,
    TransportError,
)
from control_server.inventory import ConnectionTarget
from control_server.transport import known_hosts as kh
from control_server.transport.asyncssh_config import config_for, preferences_file
from control_server.transport.base import (
    CANCEL_GRACE,
    READ_CHUNK,
    STOP,
    ChannelResult,
    LineHandler,
    LineSplitter,
    ProgressHandler,
    SendCount,
    Terminal,
    Transport,
    TransportSettings,
    stream_file,
)
from control_server.transport.endpoint import sshd_identity
from control_server.transport.limiter import HandshakeLimiter, Retryable
from control_server.transport.ssh_options import HostKeyPlan, HostSSHOptions, host_key_plan


def _log_when_enabled(log: Any) -> Any:
    """asyncssh's ``SSHLogger.log`` turns every argument into text before the logger's
    level is checked: ~0.8 ms of CPU a connection for messages nobody sees (INFO and
    DEBUG, off by default). Same output, the level checked first."""
    @functools.wraps(log)
    def checked(self: Any, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            log(self, level, msg, *args, **kwargs)

    checked.__hostplane_checked__ = True  # type: ignore[attr-defined]
    return checked


if not getattr(asyncssh.logging.SSHLogger.log, "__hostplane_checked__", False):
    asyncssh.logging.SSHLogger.log = _log_when_enabled(  # type: ignore[method-assign]
        asyncssh.logging.SSHLogger.log)


@functools.lru_cache(maxsize=64)
def _client_key(path: str, mtime_ns: int) -> asyncssh.SSHKey:
    return asyncssh.read_private_key(path)


@functools.lru_cache(maxsize=4096)
def _public_key(text: str) -> asyncssh.SSHKey | None:
    """A known_hosts key, imported once per run whatever the number of hosts sharing it."""
    try:
        return asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError):
        return None


def _keys(entries: tuple[kh.Entry, ...]) -> list[asyncssh.SSHKey]:
    return [k for k in (_public_key(e.public_key) for e in entries) if k is not None]


def _public_text(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


class _Verifier:
    """One hop's host key check. asyncssh asks ``known_hosts`` with the host and port it
    really connects to (after ssh_config); the OpenSSH-exact lookup answers, and an
    unknown key reaches ``accept_unknown``, which takes it only under accept-new for a
    host with no entry at all."""

    def __init__(self, plan: HostKeyPlan, label: str, host: str) -> None:
        self.plan, self.label, self.host = plan, label, host
        self.found: kh.Lookup | None = None
        self.offered: asyncssh.SSHKey | None = None
        self.learned: asyncssh.SSHKey | None = None

    def known_hosts(self, host: str, _addr: str, port: int | None) -> tuple[list[Any], ...]:
        self.found = kh.lookup(self.plan.files, self.plan.name(host, port))
        return _keys(self.found.keys), _keys(self.found.cas), _keys(self.found.revoked)

    def accept_unknown(self, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        if self.plan.policy != "accept-new" or self.found is None or self.found.known:
            return False
        self.learned = key
        return True

    def options(self) -> dict[str, Any]:
        if self.plan.policy == "off":
            return {"known_hosts": None}
        return {"known_hosts": self.known_hosts,
                "client_factory": functools.partial(_VerifyingClient, self),
                "host_key_alias": self.plan.alias}

    def error(self, exc: asyncssh.HostKeyNotVerifiable) -> HostKeyError:
        found = self.found or kh.lookup(self.plan.files, self.plan.name())
        offered = _public_text(self.offered) if self.offered is not None else None
        if "revoked" in str(exc).lower():
            message = kh.revoked_message(found, found.revoked[0] if len(found.revoked) == 1
                                         else None)
        elif found.known:
            message = kh.mismatch_message(found, offered)
        else:
            message = kh.unknown_message(found)
        return HostKeyError(f"{self.label}{message}", self.host)

    def learn(self) -> None:
        if self.learned is not None and self.found is not None and self.plan.learn_file:
            offered = _public_text(self.learned)
            self.learned = None
            clash = kh.append(self.plan.learn_file, self.found.name, offered)
            if clash is not None:  # another connection just recorded a different key
                raise HostKeyError(self.label + kh.mismatch_message(clash, offered), self.host)


class _VerifyingClient(asyncssh.SSHClient):
    def __init__(self, verifier: _Verifier) -> None:
        self._verifier = verifier

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        return self._verifier.accept_unknown(key)


def _hop(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` of a ProxyJump list."""
    user, _, host = spec.rpartition("@")
    port: int | None = None
    if host.startswith("[") and "]" in host:
        host, _, rest = host[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif host.count(":") == 1:
        host, _, text = host.partition(":")
        port = int(text) if text.isdigit() else None
    return user or None, host, port


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
        self._hops: list[asyncssh.SSHClientConnection] = []
        self.host_keys = host_key_plan(target.address, target.port, target.user,
                                       self._opts, settings)
        self.policy = self.host_keys.policy

    # --- connecting -------------------------------------------------------------------

    def _config_option(self, host: str) -> dict[str, Any]:
        # Always explicit: only the blocks of ssh_config that can apply to ``host``
        # (asyncssh would parse the whole file, ~/.ssh/config by default, per connection).
        config = config_for(self._opts.ssh_config or self.settings.ssh_config, host)
        return {"config": [*config, preferences_file()]}

    def _base_options(self) -> dict[str, Any]:
        t = self.target
        opts: dict[str, Any] = {
            "host": t.address,
            "connect_timeout": self.settings.connect_timeout,
            "keepalive_interval": self.settings.keepalive_interval,
            "keepalive_count_max": 3,
            **self._config_option(t.address),
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
        return opts

    async def _verified(self, verifier: _Verifier, opts: dict[str, Any]
                        ) -> asyncssh.SSHClientConnection:
        try:
            conn = await asyncssh.connect(**opts, **verifier.options())
        except asyncssh.HostKeyNotVerifiable as exc:
            raise verifier.error(exc) from None
        try:
            verifier.learn()
        except HostKeyError:
            conn.close()
            raise
        return conn

    async def _jump(self, spec: str | None, depth: int = 0
                    ) -> asyncssh.SSHClientConnection | None:
        """Open the ProxyJump hops one by one, each verified with its own HostName/Port
        (asyncssh's own ProxyJump would check them against its defaults, not ours)."""
        conn: asyncssh.SSHClientConnection | None = None
        for hop in (spec or "").split(",") if spec else []:
            user, host, port = _hop(hop.strip())
            plan = host_key_plan(host, port, user, self._opts, self.settings)
            tunnel = conn
            if tunnel is None and plan.proxy_jump and depth < 8:
                tunnel = await self._jump(plan.proxy_jump, depth + 1)
            opts: dict[str, Any] = {"host": host, "tunnel": tunnel,
                                    "connect_timeout": self.settings.connect_timeout,
                                    **self._config_option(host)}
            opts.update({k: v for k, v in (("port", port), ("username", user)) if v})
            conn = await self._verified(_Verifier(plan, f"jump host {host}: ",
                                                  self.target.host), opts)
            self._hops.append(conn)
        return conn

    async def connect(self) -> None:
        if self._conn is not None:
            return
        config = self._opts.ssh_config or self.settings.ssh_config
        endpoint, recorded = sshd_identity(self.target.address, self.target.port,
                                           [config] if config is not None else None,
                                           self.settings.known_hosts)
        if recorded is not None:  # known_hosts tells which sshd answers: share its window
            self._limiter.same_server(endpoint, recorded)
        try:
            self._conn = await self._limiter.run(self._handshake, endpoint)
        except Retryable as exc:
            raise ConnectError(
                f"{exc} (gave up after {self._limiter.retries} retries)", self.target.host
            ) from None
        key = self._conn.get_server_host_key()
        if key is not None:  # one sshd on several addresses: one handshake window
            self._limiter.same_server(endpoint, key.export_public_key().split()[1].decode())

    async def _open(self) -> asyncssh.SSHClientConnection:
        opts = self._base_options()
        try:
            # An explicit tunnel (None: direct) so asyncssh never follows ProxyJump itself.
            opts["tunnel"] = await self._jump(self.host_keys.proxy_jump)
            return await self._verified(_Verifier(self.host_keys, "", self.target.host), opts)
        except BaseException:
            self._close_hops()
            raise

    def _close_hops(self) -> None:
        for hop in reversed(self._hops):
            hop.close()
        self._hops = []

    async def _handshake(self) -> asyncssh.SSHClientConnection:
        host = self.target.host
        try:
            return await self._open()
        except asyncssh.PermissionDenied as exc:
            user = self.target.user or "(ssh config / current user)"
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

    # --- channels ---------------------------------------------------------------------

    async def _process(self, command: str) -> asyncssh.SSHClientProcess[bytes]:
        if self._conn is None:
            await self.connect()
        assert self._conn is not None
        try:
            return await self._conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise ChannelOpenError(f"cannot open a channel: {exc}", self.target.host) from None

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        proc = await self._process(command)
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        splitter = LineSplitter(on_line)

        async def read_all() -> None:
            while chunk := await proc.stdout.read(READ_CHUNK):
                splitter.feed(chunk)
            splitter.close()

        try:
            try:
                proc.stdin.write(stdin)
                if cancel_message is None:  # else stdin stays open for a cancel message
                    proc.stdin.write_eof()
            except (asyncssh.Error, BrokenPipeError, ConnectionResetError):
                pass  # the command exited without reading its input (executor missing)
            await read_all()
            completed = await proc.wait()
        except asyncio.CancelledError:
            if cancel_message is not None and STOP.explicit:  # say so, take the last events
                with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                    proc.stdin.write(cancel_message)
                    await asyncio.wait_for(read_all(), CANCEL_GRACE)
            proc.close()  # a closed channel alone only detaches the executor
            stderr_task.cancel()
            raise
        except (asyncssh.Error, OSError) as exc:
            stderr_task.cancel()
            raise TransportError(f"connection lost: {exc}", self.target.host) from None
        stderr = await stderr_task
        sig = completed.exit_signal[0] if completed.exit_signal else None
        if sig and not sig.startswith("SIG") and hasattr(signal, "SIG" + sig):
            sig = "SIG" + sig
        return ChannelResult(completed.exit_status, stderr, sig)

    async def send_file(self, command: str, source: Path, offset: int = 0,
                        on_progress: ProgressHandler | None = None) -> ChannelResult:
        proc = await self._process(command)
        stdout_task = asyncio.ensure_future(proc.stdout.read())
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        count = SendCount(on_progress)
        try:
            try:
                await stream_file(proc.stdin, source, offset, count)
                proc.stdin.write_eof()
            except (asyncssh.Error, BrokenPipeError, ConnectionResetError):
                if proc.exit_status is None and self._conn is not None and self._conn.is_closed():
                    raise
                # else the command ended without reading it all: its status tells why
            completed = await proc.wait()
            stderr = await stderr_task
        except (asyncssh.Error, OSError) as exc:
            proc.close()
            raise TransportError(f"connection lost after {count.sent} bytes of {source}: {exc}",
                                 self.target.host) from None
        except asyncio.CancelledError:
            proc.close()
            raise
        finally:
            stdout_task.cancel()
            stderr_task.cancel()
        return ChannelResult(completed.exit_status, stderr)

    async def open_terminal(self, command: str, term_type: str,
                            size: tuple[int, int]) -> Terminal:
        if self._conn is None:
            await self.connect()
        assert self._conn is not None
        try:
            proc = await self._conn.create_process(command, encoding=None, term_type=term_type,
                                                   term_size=size, stderr=asyncssh.STDOUT)
        except (asyncssh.Error, OSError) as exc:
            raise ChannelOpenError(f"cannot open a terminal: {exc}", self.target.host) from None
        return _SSHTerminal(proc)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(asyncssh.Error, OSError):
                await self._conn.wait_closed()
            self._conn = None
        self._close_hops()

    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def abort(self) -> None:
        """Drop the connection at once (tests use it to cut a sequence mid-way)."""
        if self._conn is not None:
            self._conn.abort()
        for hop in self._hops:
            hop.abort()


class _SSHTerminal(Terminal):
    def __init__(self, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self._proc = proc

    async def read(self) -> bytes:
        try:
            return await self._proc.stdout.read(READ_CHUNK)
        except (asyncssh.Error, OSError):
            return b""  # the channel or the connection went: the session is over

    def write(self, data: bytes) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            self._proc.stdin.write(data)

    def resize(self, columns: int, rows: int) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            self._proc.change_terminal_size(columns, rows)

    async def close(self) -> int | None:
        self._proc.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._proc.wait_closed()
        return self._proc.exit_status
