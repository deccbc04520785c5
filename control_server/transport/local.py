"""The ``local`` transport: the same executor and protocol, as a subprocess of this machine."""

from __future__ import annotations

import asyncio
import signal

from control_server.transport.base import (
    READ_CHUNK,
    ChannelResult,
    LineHandler,
    LineSplitter,
    Transport,
)


class LocalTransport(Transport):
    name = "local"

    async def connect(self) -> None:
        return None

    async def run(self, command: str, stdin: bytes, on_line: LineHandler) -> ChannelResult:
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
        try:
            try:
                proc.stdin.write(stdin)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command exited without reading its input (e.g. executor missing)
            splitter = LineSplitter(on_line)
            while chunk := await proc.stdout.read(READ_CHUNK):
                splitter.feed(chunk)
            splitter.close()
            status = await proc.wait()
        except asyncio.CancelledError:
            # Closing our ends is what the executor watches for: it then kills its step.
            proc.stdin.close()
            if proc.returncode is None:
                proc.send_signal(signal.SIGHUP)
            # Reap it, so no process (or asyncio transport) outlives the cancelled run.
            await asyncio.shield(asyncio.wait_for(proc.wait(), 10))
            stderr_task.cancel()
            raise
        stderr = await stderr_task
        sig = None
        if status < 0:
            sig = signal.Signals(-status).name
        return ChannelResult(status if status >= 0 else None, stderr, sig)

    async def close(self) -> None:
        return None
