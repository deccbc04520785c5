"""The named host lock: ``flock`` on ``<cache>/locks/<name>.lock``, held for the sequence.

Two sequences that name the same lock (say ``instance-vm42``) never run at once on a host;
the second waits up to ``timeout`` seconds, then gives up with ``LockTimeout`` (exit 3).
The kernel releases an flock when its holder dies, so a crashed executor never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time

from host_executor import paths
from host_executor.errors import ControllerGone, LockTimeout
from host_executor.step import CancelToken

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Optional

DEFAULT_TIMEOUT = 60.0
_POLL = 0.05


class HostLock:
    def __init__(self, name: str, timeout: Optional[float] = None) -> None:
        self.name = name
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.path = os.path.join(paths.state_dir("locks"), paths.safe_name(name) + ".lock")
        self._fd: Optional[int] = None

    def acquire(self, cancel: CancelToken) -> float:
        """Wait for the lock; return the seconds waited."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            waited = time.monotonic() - start
            if waited >= self.timeout:
                os.close(fd)
                raise LockTimeout(self.name, self.timeout)
            if cancel.wait(min(_POLL, self.timeout - waited)):
                os.close(fd)
                raise ControllerGone(cancel.reason)
        self._fd = fd
        return time.monotonic() - start

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the flock
