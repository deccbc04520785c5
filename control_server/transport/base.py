"""The transport interface: connect, run a command with stdin streaming lines back, put a
file, close. ``asyncssh`` (default), ``local`` and ``paramiko`` implement it.

A transport knows nothing of the executor or the protocol: delivery (``delivery.py``) builds
the commands; the transport only moves bytes over one connection per host.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from control_server.inventory import ConnectionTarget

LineHandler = Callable[[bytes], None]
ProgressHandler = Callable[[int], None]  # bytes of the file sent so far (past the offset)

HOST_KEY_POLICIES = ("strict", "accept-new", "off")


@dataclass(frozen=True)
class TransportSettings:
    """Connection options shared by every host of a run (CLI flags and their defaults)."""

    # None: not given on the command line, so the inventory's ssh args, then ssh_config,
    # decide (default strict); a value given wins over both.
    host_key_checking: str | None = None
    known_hosts: Path | None = None  # given: replaces UserKnownHostsFile; None: ssh's files
    ssh_config: Path | None = None  # None: ~/.ssh/config
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    handshake_limit: int = 16  # concurrent SSH handshakes, separate from --forks
    handshake_retries: int = 5
    extra_known_hosts: tuple[Path, ...] = field(default=())


class LineSplitter:
    """Reassembles stdout chunks into whole lines, however long: an event line carrying a
    capped 1 MiB of output may be several MiB of JSON, and must arrive whole."""

    def __init__(self, on_line: LineHandler) -> None:
        self.on_line = on_line
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        while chunk:
            head, sep, chunk = chunk.partition(b"\n")
            self._parts.append(head)
            if not sep:
                return
            line = b"".join(self._parts) + b"\n"
            self._parts = []
            self.on_line(line)

    def close(self) -> None:
        if self._parts:
            line, self._parts = b"".join(self._parts), []
            if line:
                self.on_line(line)


READ_CHUNK = 1 << 16
SEND_CHUNK = 1 << 18  # a file streamed to a channel's stdin, in pieces of this size


def file_chunks(source: Path, offset: int) -> Iterator[bytes]:
    """The bytes of ``source`` from ``offset`` on, a piece at a time (never all at once)."""
    with open(source, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(SEND_CHUNK):
            yield chunk


class StreamWriter(Protocol):
    def write(self, data: bytes) -> object: ...

    async def drain(self) -> None: ...


class SendCount:
    """Bytes of a file sent so far, reported on as they go."""

    def __init__(self, on_progress: ProgressHandler | None) -> None:
        self.sent = 0
        self._on_progress = on_progress

    def add(self, count: int) -> None:
        self.sent += count
        if self._on_progress is not None:
            self._on_progress(self.sent)


async def stream_file(writer: StreamWriter, source: Path, offset: int, count: SendCount) -> None:
    """Write ``source`` from ``offset`` to ``writer``, waiting on its flow control after
    each piece (the channel's window, the pipe's buffer): never the file in memory."""
    for chunk in file_chunks(source, offset):
        writer.write(chunk)
        await writer.drain()
        count.add(len(chunk))
# After a cancel message, how long a channel waits for the executor's last events (the
# killed step's end, the rollback, ``done``) before it closes; the executor goes on alone.
CANCEL_GRACE = 10.0


class StopIntent:
    """What a cancelled run means in this process: ``cancel`` (Ctrl-C, ``jobs cancel``: the
    executor is told to stop) or ``detach`` (the process is shutting down: its executors
    go on alone and another server, or ``jobs resume``, follows them)."""

    mode = "cancel"

    @property
    def explicit(self) -> bool:
        return self.mode == "cancel"


STOP = StopIntent()


@dataclass(frozen=True)
class ChannelResult:
    exit_status: int | None  # None when the channel died without a status
    stderr: bytes
    signal: str | None = None


class Terminal(ABC):
    """An interactive channel with a pty on the host (``hostplane console``): bytes both
    ways, unchanged (the remote pty does the line discipline), and the window's size."""

    @abstractmethod
    async def read(self) -> bytes:
        """The next bytes the remote side wrote; ``b""`` once it is done."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def resize(self, columns: int, rows: int) -> None: ...

    @abstractmethod
    async def close(self) -> int | None:
        """Close the channel (idempotent); the remote command's exit status if it ended."""


class Transport(ABC):
    """One connection to one host, reused by every channel of a run."""

    name = "abstract"

    def __init__(self, target: ConnectionTarget, settings: TransportSettings) -> None:
        self.target = target
        self.settings = settings

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection; raise a ``TransportError`` subclass naming why it failed."""

    @abstractmethod
    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        """Run ``command`` (a POSIX shell command line) in one channel; feed ``stdin``, close
        it, call ``on_line`` for every stdout line as it arrives, return the exit status.

        With ``cancel_message``, stdin stays open; when the awaiting task is cancelled the
        message is written to stdin and the channel's last lines are read (up to
        ``CANCEL_GRACE`` s) before it closes. Without it, a cancelled run just closes."""

    @abstractmethod
    async def close(self) -> None:
        """Done with the connection (idempotent): closed, or for a pooled transport
        (``transport.pool``) handed back to the pool, still open for the next job."""

    async def discard(self) -> None:
        """Drop the connection for good: it was lost (or is suspect), and the next
        ``connect`` must open a fresh one. The runner calls it before reattaching. For a
        transport of its own, the same as ``close``; a pooled one retires the shared
        connection (closed once its other channels end)."""
        await self.close()

    def alive(self) -> bool:
        """False once the connection is known to be closed or lost (True: not known)."""
        return True

    async def open_terminal(self, command: str, term_type: str,
                            size: tuple[int, int]) -> Terminal:
        """Run ``command`` in a channel with a pty of ``term_type`` and ``size`` (columns,
        rows). Only the SSH transport has one (a console is over the host's connection)."""
        from control_server.errors import InputError

        raise InputError(f"host {self.target.host}: the {self.name} transport has no "
                         "interactive terminal (attach over ssh)")

    async def send_file(self, command: str, source: Path, offset: int = 0,
                        on_progress: ProgressHandler | None = None) -> ChannelResult:
        """Run ``command`` in one channel of this connection with the bytes of ``source``
        from ``offset`` on as its stdin, then end stdin and return the exit status.

        The real transports stream it in pieces under the channel's flow control, calling
        ``on_progress`` after each; this fallback (for test doubles) sends it at once. A
        connection lost on the way raises ``TransportError``: what the command got so far
        stays got (``image push`` resumes from there)."""
        data = b"".join(file_chunks(source, offset))
        result = await self.run(command, data, lambda _line: None)
        if on_progress is not None:
            on_progress(len(data))
        return result

    async def put_file(self, data: bytes, remote_path: str, mode: int = 0o600) -> None:
        """Write ``data`` atomically to ``remote_path`` in one channel (parent made 0700)."""
        quoted = shlex.quote(remote_path)
        command = (
            f"umask 077 && mkdir -p \"$(dirname {quoted})\" && "
            f"cat > {quoted}.tmp.$$ && chmod {mode:o} {quoted}.tmp.$$ && "
            f"mv -f {quoted}.tmp.$$ {quoted}"
        )
        result = await self.run(command, data, lambda _line: None)
        if result.exit_status != 0:
            from control_server.errors import TransportError

            raise TransportError(
                f"could not write {remote_path}: {result.stderr.decode(errors='replace').strip()}",
                self.target.host,
            )
