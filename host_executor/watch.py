"""Noticing that the control server went away, even while a step is running.

The signals, each of which cancels the run's ``CancelToken`` with a reason:

- stdout hung up: the reader of our stdout closed it (the SSH channel closed, the control
  server died). A watcher thread polls fd 1 for POLLERR/POLLHUP, so this is seen while a
  step runs and nothing is being written; a write failing with EPIPE says the same.
- SIGHUP, SIGTERM, SIGINT.
- stdin EOF, only with ``--watch-stdin``: the control server's transports send the request
  and then close stdin, so by default EOF after the request means nothing. A controller
  that keeps stdin open for the whole run can ask for EOF to mean "gone".

The running step is then killed (its whole process group), the failure policy applies
(rollback if asked) and the journal records the outcome; stdout writes are dropped.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import threading

from host_executor.step import CancelToken

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, List

_HANGUP = select.POLLERR | select.POLLHUP | select.POLLNVAL
_SIGNALS = ("SIGHUP", "SIGTERM", "SIGINT")


class ControllerWatch:
    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.token = CancelToken()
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self._thread: "threading.Thread | None" = None

    @property
    def gone(self) -> bool:
        return self.token.is_set()

    @property
    def reason(self) -> str:
        return self.token.reason

    def mark_gone(self, reason: str) -> None:
        self.token.cancel(reason)

    def install_signals(self) -> None:
        for name in _SIGNALS:
            signum = getattr(signal, name)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only set a flag: the main thread notices within one poll interval and unwinds
        # cleanly (kill the step, roll back, journal), which an exception here could not.
        self.mark_gone("%s received" % signal.Signals(signum).name)

    def start(self, watch_stdin: bool) -> None:
        """Start the watcher thread (a daemon: it never keeps the executor alive)."""
        fds: List[int] = [self.stdout_fd]
        if watch_stdin and _is_stream(self.stdin_fd):
            fds.append(self.stdin_fd)
        self._thread = threading.Thread(
            target=self._watch, args=(fds,), name="controller-watch", daemon=True
        )
        self._thread.start()

    def _watch(self, fds: List[int]) -> None:
        poller = select.poll()
        for fd in fds:
            # fd 1 with no events asked: poll still reports hang-ups, never "writable".
            poller.register(fd, select.POLLIN if fd == self.stdin_fd else 0)
        watching = set(fds)
        while watching:
            try:
                ready = poller.poll()
            except OSError:
                return
            for fd, events in ready:
                if fd == self.stdin_fd and fd in watching and not events & select.POLLNVAL:
                    if _read_is_eof(fd):
                        self.mark_gone("stdin closed")
                    else:
                        continue  # stray bytes after the request: ignored
                elif events & _HANGUP:
                    self.mark_gone("stdout closed")
                else:
                    continue
                poller.unregister(fd)
                watching.discard(fd)


def _read_is_eof(fd: int) -> bool:
    try:
        return not os.read(fd, 65536)
    except OSError:
        return True


def _is_stream(fd: int) -> bool:
    """A pipe, socket or tty: EOF there is news. A regular file's EOF (``< req.json``) is not."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode)
