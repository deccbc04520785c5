"""The ``local`` transport: the same executor and protocol, as a subprocess of this machine."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from control_server.transport.base import (
    CANCEL_GRACE,
    READ_CHUNK,
    STOP,
    ChannelResult,
    LineHandler,
    LineSplitter,
    ProgressHandler,
    SendCount,
    Transport,
    stream_file,
)


class LocalTransport(Transport):
    name = "local"

    async def connect(self) -> None:
        return None

    async def run(self, command: str, stdin: bytes, on_line: LineHandler,
                  cancel_message: bytes | None = None) -> ChannelResult:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        splitter = LineSplitter(on_line)

        async def read_all() -> None:
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(READ_CHUNK):
                splitter.feed(chunk)
            splitter.close()

        try:
            try:
                proc.stdin.write(stdin)
                await proc.stdin.drain()
                if cancel_message is None:
                    proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command exited without reading its input (e.g. executor missing)
            await read_all()
            status = await proc.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(proc, cancel_message, read_all))
            stderr_task.cancel()
            raise
        stderr = await stderr_task
        sig = None
        if status < 0:
            sig = signal.Signals(-status).name
        return ChannelResult(status if status >= 0 else None, stderr, sig)

    @staticmethod
    async def _cancel(proc: asyncio.subprocess.Process, message: bytes | None,
                      read_all: Callable[[], Awaitable[None]]) -> None:
        """An explicit cancel: the message (or SIGTERM), the last events, then reap it, so
        no process (or asyncio transport) outlives the cancelled run."""
        assert proc.stdin is not None
        if not STOP.explicit:  # shutting down: the executor goes on alone
            proc.stdin.close()
            return
        with contextlib.suppress(OSError, TimeoutError):
            if message is not None:
                proc.stdin.write(message)
                await proc.stdin.drain()
            elif proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(read_all(), CANCEL_GRACE)
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), CANCEL_GRACE)

    async def send_file(self, command: str, source: Path, offset: int = 0,
                        on_progress: ProgressHandler | None = None) -> ChannelResult:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin and proc.stderr
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        try:
            try:
                await stream_file(proc.stdin, source, offset, SendCount(on_progress))
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command ended without reading it all: its status tells why
            status = await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            stderr_task.cancel()
            raise
        return ChannelResult(status if status >= 0 else None, await stderr_task)

    async def close(self) -> None:
        return None
