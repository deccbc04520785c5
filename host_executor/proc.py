"""Running one child process for a step: own process group, bounded output, timeout.

- The child starts in a new session (``start_new_session``), so its whole process group,
  grandchildren included, can be killed: SIGTERM, then SIGKILL after ``KILL_GRACE``.
- stdout and stderr are read concurrently with ``poll`` and kept up to ``limit + 1``
  bytes (the extra byte tells the protocol it was cut); the rest is read and dropped, so a
  chatty child never blocks on a full pipe.
- Once the child exits, its pipes get ``EXIT_GRACE`` to reach EOF: a daemon it left in the
  background may hold them open forever, and the step must not wait for it.
- The child never inherits the executor's stdin (the SSH channel): it gets ``stdin`` data
  through a pipe, or /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time

from host_executor.errors import StepFailed
from host_executor.step import CancelToken

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import IO, Dict, List, Optional

KILL_GRACE = 2.0
EXIT_GRACE = 0.5
_TICK = 0.1


class ProcResult:
    __slots__ = ("cancelled", "rc", "stderr", "stdout", "timed_out")

    def __init__(self) -> None:
        self.rc: Optional[int] = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.timed_out = False
        self.cancelled: Optional[str] = None


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
    except OSError:
        pass  # the child exited or closed its stdin without reading everything
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill() also reaches zombies, which a container's init may never reap: look closer.
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def kill_group(proc: "subprocess.Popen[bytes]", drain: "_Drain") -> None:
    """SIGTERM the process group, wait up to KILL_GRACE, then SIGKILL whatever is left."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE
    while time.monotonic() < end:
        drain.step(0.02)
        if proc.poll() is not None and not _group_alive(pgid):
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


class _Drain:
    """Reads the child's stdout and stderr as they come, keeping ``limit + 1`` bytes of each."""

    def __init__(self, proc: "subprocess.Popen[bytes]", result: ProcResult, limit: int) -> None:
        self.keep = limit + 1
        self.poller = select.poll()
        self.bufs: Dict[int, bytearray] = {}
        for pipe, buf in ((proc.stdout, result.stdout), (proc.stderr, result.stderr)):
            assert pipe is not None
            self.bufs[pipe.fileno()] = buf
            self.poller.register(pipe.fileno(), select.POLLIN)

    @property
    def open(self) -> bool:
        return bool(self.bufs)

    def step(self, wait: float) -> None:
        if not self.bufs:
            time.sleep(wait)
            return
        for fd, _events in self.poller.poll(max(0, int(wait * 1000))):
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.poller.unregister(fd)
                del self.bufs[fd]
                continue
            buf = self.bufs[fd]
            room = self.keep - len(buf)
            if room > 0:
                buf += chunk[:room]


def run_process(
    argv: List[str],
    limit: int,
    cancel: CancelToken,
    timeout: Optional[float] = None,
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[str] = None,
    stdin: Optional[bytes] = None,
) -> ProcResult:
    """Run ``argv`` to completion, timeout or cancellation; never leaves the group behind."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise StepFailed("cannot run %s: %s" % (argv[0], exc.strerror or exc), rc=127) from None
    result = ProcResult()
    try:
        _supervise(proc, result, limit, cancel, timeout, stdin)
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    result.rc = proc.returncode
    return result


def _supervise(
    proc: "subprocess.Popen[bytes]",
    result: ProcResult,
    limit: int,
    cancel: CancelToken,
    timeout: Optional[float],
    stdin: Optional[bytes],
) -> None:
    if stdin is not None and proc.stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    drain = _Drain(proc, result, limit)
    deadline = None if timeout is None else time.monotonic() + timeout
    exited_at: Optional[float] = None
    while True:
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        # A process that already exited on its own keeps its result: a cancel (or the
        # deadline) arriving after the end must never turn a finished step into a failure.
        if exited_at is None and cancel.is_set():
            result.cancelled = cancel.reason
            break
        if exited_at is None and deadline is not None and now >= deadline:
            result.timed_out = True
            break
        if exited_at is not None and (not drain.open or now - exited_at >= EXIT_GRACE):
            return
        wait = _TICK if deadline is None else max(0.0, min(_TICK, deadline - now))
        drain.step(wait)
        if not drain.open and exited_at is None:
            # Pipes closed: the child is exiting (or closed them itself); wait for it a tick.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
    kill_group(proc, drain)
