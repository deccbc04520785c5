"""What an action handler gets (``StepContext``) and returns (``StepResult``).

Handlers are plain functions ``handler(args, ctx) -> StepResult``; they may also raise
``StepFailed`` to fail the step with a message. Plain classes with ``__slots__`` rather than
dataclasses: importing ``dataclasses`` costs start-up time on every host, every sequence.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Optional


class CancelToken:
    """Set when the step must stop now (the controller went away, a signal arrived)."""

    # threading.Event's set/is_set/wait on a bare lock, held while not cancelled: importing
    # threading costs start-up time. cancel() may run in a signal handler or the watcher
    # thread, even twice at once: a second release of the lock is simply ignored.
    __slots__ = ("_cancelled", "_lock", "reason")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._cancelled = False
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._cancelled:
            self.reason = reason
            self._cancelled = True
            _release(self._lock)

    def is_set(self) -> bool:
        return self._cancelled

    def wait(self, timeout: Optional[float]) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the token is cancelled."""
        if self._cancelled:
            return True
        if timeout is None:
            got = self._lock.acquire()
        elif timeout <= 0:
            got = self._lock.acquire(False)
        else:
            got = self._lock.acquire(True, min(timeout, _thread.TIMEOUT_MAX))
        if got:  # cancelled: leave the lock free for every other waiter
            _release(self._lock)
        return self._cancelled


def _release(lock: _thread.LockType) -> None:
    try:
        lock.release()
    except RuntimeError:
        pass  # released already (a concurrent cancel)


class StepContext:
    """The request-level settings one step runs under."""

    __slots__ = ("action", "cancel", "check", "diff", "index", "name", "output_limit", "timeout")

    def __init__(
        self,
        index: int,
        name: str,
        action: str,
        check: bool = False,
        diff: bool = False,
        timeout: Optional[float] = None,
        output_limit: int = 1024 * 1024,
        cancel: Optional[CancelToken] = None,
    ) -> None:
        self.index = index
        self.name = name
        self.action = action
        self.check = check
        self.diff = diff
        self.timeout = timeout
        self.output_limit = output_limit
        self.cancel = cancel if cancel is not None else CancelToken()


class StepResult:
    """One step's outcome; ``stdout``/``stderr`` are raw bytes (capped by the runner)."""

    __slots__ = ("data", "diff", "msg", "rc", "status", "stderr", "stdout")

    def __init__(
        self,
        status: str,
        msg: str = "",
        rc: Optional[int] = None,
        stdout: bytes = b"",
        stderr: bytes = b"",
        data: Optional[Dict[str, Any]] = None,
        diff: Optional[str] = None,
    ) -> None:
        self.status = status
        self.msg = msg
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.data = data if data is not None else {}
        self.diff = diff
