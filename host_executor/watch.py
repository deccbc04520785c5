"""Telling a lost controller from an explicit cancel, even while a step is running.

Only an explicit cancel stops work (DESIGN: "who stops work"):

- a ``{"cancel": REASON}`` line on stdin after the request (the control server keeps the
  channel's stdin open for that: Ctrl-C, ``jobs cancel``, the API's cancel);
- SIGTERM or SIGINT (someone on the host asked this process to stop).

A lost controller only *detaches* the executor: stdout hung up (the SSH channel or
connection went away: a watcher thread polls fd 1 for POLLERR/POLLHUP), a write failing
with EPIPE, SIGHUP, or stdin at EOF with ``--watch-stdin``. The sequence then runs to its
end under its own deadline, timeouts and failure policy, journaling every event; stdout
is pointed at /dev/null so nothing blocks or fails on it. With ``on_disconnect: abort`` in
the request, a lost controller cancels as before.
"""

from __future__ import annotations

import _thread
import os
import select
import stat

from host_executor import jsonfast
from host_executor.step import CancelToken

try:  # ``signal`` imports ``enum``: start-up time on every host; ``_signal`` is the same API
    import _signal as signal
except ImportError:  # pragma: no cover - another Python
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, List, Optional

_HANGUP = select.POLLERR | select.POLLHUP | select.POLLNVAL
_CANCEL_SIGNALS = ("SIGTERM", "SIGINT")
_NAMES = {getattr(signal, name): name for name in _CANCEL_SIGNALS}
_MAX_CONTROL_LINE = 4096


class ControllerWatch:
    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.token = CancelToken()
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.abort_on_loss = False
        self.lost_reason: Optional[str] = None
        self.stdout_gone = False
        self._started = False

    @property
    def cancelled(self) -> bool:
        return self.token.is_set()

    @property
    def reason(self) -> str:
        return self.token.reason

    @property
    def lost(self) -> bool:
        return self.lost_reason is not None

    def cancel(self, reason: str) -> None:
        self.token.cancel(reason)

    def mark_lost(self, reason: str, stdout_gone: bool = False) -> None:
        """The controller is gone: cancel only under ``abort``. When its end of stdout is
        gone, stdout (and stderr) point at /dev/null, so no write fails or blocks."""
        if self.lost_reason is None:
            self.lost_reason = reason
        if stdout_gone and not self.stdout_gone:
            self.stdout_gone = True
            _point_at_devnull(self.stdout_fd)
            if self.stdout_fd == 1:
                _point_at_devnull(2)
        if self.abort_on_loss:
            self.token.cancel(reason)

    def install_signals(self) -> None:
        for name in _CANCEL_SIGNALS:
            signal.signal(getattr(signal, name), self._on_cancel_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_cancel_signal(self, signum: int, _frame: Any) -> None:
        # Only set a flag: the main thread notices within one poll interval and unwinds
        # cleanly (kill the step, roll back, journal), which an exception here could not.
        self.cancel("%s received" % _NAMES.get(signum, "signal %d" % signum))

    def _on_hangup(self, _signum: int, _frame: Any) -> None:
        self.mark_lost("SIGHUP received")

    def start(self, watch_stdin: bool) -> None:
        """Start the watcher thread (a bare ``_thread``, which never keeps the executor
        alive, like a daemon thread; ``threading`` costs start-up time)."""
        fds: List[int] = [self.stdout_fd]
        if _is_stream(self.stdin_fd):
            fds.append(self.stdin_fd)
        _thread.start_new_thread(self._watch_quietly, (fds, watch_stdin))
        self._started = True

    def _watch_quietly(self, fds: List[int], watch_stdin: bool) -> None:
        try:
            self._watch(fds, watch_stdin)
        except Exception:  # never a traceback on stderr; the run goes on unwatched
            pass

    def _watch(self, fds: List[int], watch_stdin: bool) -> None:
        poller = select.poll()
        for fd in fds:
            # fd 1 with no events asked: poll still reports hang-ups, never "writable".
            poller.register(fd, select.POLLIN if fd == self.stdin_fd else 0)
        watching = set(fds)
        pending = bytearray()
        while watching:
            try:
                ready = poller.poll()
            except OSError:
                return
            for fd, events in ready:
                if fd not in watching:
                    continue
                if fd == self.stdin_fd and not events & select.POLLNVAL:
                    data = _read(fd)
                    if data:
                        pending = self._control_lines(pending + data)
                        continue
                    if watch_stdin:
                        self.mark_lost("stdin closed")
                elif events & _HANGUP:
                    self.mark_lost("stdout closed", stdout_gone=True)
                else:
                    continue
                poller.unregister(fd)
                watching.discard(fd)

    def _control_lines(self, buf: bytearray) -> bytearray:
        """Act on every whole control line in ``buf``; return what is left of it."""
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf = bytearray(rest)
            reason = _cancel_reason(line)
            if reason is not None:
                self.cancel(reason)
        return buf[-_MAX_CONTROL_LINE:]


def _cancel_reason(line: bytes) -> Optional[str]:
    try:
        message = jsonfast.loads(line)
    except ValueError:
        return None  # stray bytes after the request: ignored
    if isinstance(message, dict) and "cancel" in message:
        return "cancelled: %s" % (message["cancel"] or "by the control server")
    return None


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _point_at_devnull(fd: int) -> None:
    """Nobody reads fd ``fd`` any more: writes to it must neither block nor fail."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def _is_stream(fd: int) -> bool:
    """A pipe, socket or tty: EOF there is news. A regular file's EOF (``< req.json``) is not."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode)
