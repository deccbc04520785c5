"""What an action handler gets (``StepContext``) and returns (``StepResult``).

Handlers are plain functions ``handler(args, ctx) -> StepResult``; they may also raise
``StepFailed`` to fail the step with a message. Plain classes with ``__slots__`` rather than
dataclasses: importing ``dataclasses`` costs start-up time on every host, every sequence.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Optional


class CancelToken:
    """Set when the step must stop now (the controller went away, a signal arrived)."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float]) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the token is cancelled."""
        return self._event.wait(timeout)


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
