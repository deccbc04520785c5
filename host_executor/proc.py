"""Running one child process for a step: own process group, bounded output, timeout.

- The child starts in a new session (``start_new_session``), so its whole process group,
  grandchildren included, can be killed: SIGTERM, then SIGKILL after ``KILL_GRACE``.
- stdout and stderr are read concurrently with ``poll`` and kept up to ``limit + 1``
  bytes (the extra byte tells the protocol it was cut); the rest is read and dropped, so a
  chatty child never blocks on a full pipe.
- Once the child exits, its pipes get ``EXIT_GRACE`` to reach EOF: a daemon it left in the
  background may hold them open forever, and the step must not wait for it.
- The child never inherits the executor's stdin (the SSH channel): it gets ``stdin`` data
  through a pipe (written from the same poll loop, no thread), or /dev/null.
- The child starts with ``os.posix_spawn`` (``setsid``, the pipes as file actions, SIGPIPE
  and SIGXFSZ back to their defaults, no inherited descriptor beyond 0-2): what
  ``subprocess.Popen(start_new_session=True)`` does, without importing ``subprocess`` (and
  ``threading``, ``selectors``...) on every host start, and cheaper per step. ``Popen`` is
  the fallback where ``posix_spawn`` cannot express the request: a ``cwd``, no
  ``posix_spawn`` or no ``setsid`` support in the C library.
"""

from __future__ import annotations

import os
import select
import time

from host_executor.errors import StepFailed
from host_executor.step import CancelToken

try:  # ``signal`` imports ``enum``: start-up time on every host; ``_signal`` is the same API
    import _signal as signal
except ImportError:  # pragma: no cover - another Python
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

KILL_GRACE = 2.0
EXIT_GRACE = 0.5
_TICK = 0.1
_CHUNK = 65536
# Python ignores these at start-up; the child gets them back as Popen(restore_signals) does.
_RESTORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ")
                          if hasattr(signal, name))
_posix_spawn = getattr(os, "posix_spawn", None)


class ProcResult:
    __slots__ = ("cancelled", "rc", "stderr", "stdout", "timed_out")

    def __init__(self) -> None:
        self.rc: Optional[int] = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.timed_out = False
        self.cancelled: Optional[str] = None


def _close(fd: Optional[int]) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _exit_code(status: int) -> Optional[int]:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return None  # stopped or continued: still there


class Child:
    """A started child: its pid (= its process group and session), our ends of its pipes."""

    __slots__ = ("_popen", "pid", "returncode", "stderr", "stdin", "stdout")

    def __init__(self, pid: int, stdin: Optional[int], stdout: int, stderr: int,
                 popen: Any = None) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: Optional[int] = None
        self._popen = popen

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.poll()
                return self.returncode
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: as subprocess, call it 0
                self.returncode = 0
                return 0
            if pid == self.pid:
                self.returncode = _exit_code(status)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the exit, up to ``timeout`` seconds (None: for as long as it takes)."""
        if timeout is None:
            while self.poll() is None:
                if self._popen is not None:
                    self.returncode = self._popen.wait()
                    break
                try:
                    _pid, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 0
                    break
                self.returncode = _exit_code(status)
            return self.returncode
        end = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.02)
        return self.returncode

    def close(self) -> None:
        if self._popen is not None:  # its file objects own the descriptors
            for pipe in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
        else:
            for fd in (self.stdin, self.stdout, self.stderr):
                _close(fd)
        self.stdin = None


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


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: Child, drain: _Drain) -> None:
    """SIGTERM the process group, wait up to KILL_GRACE, then SIGKILL whatever is left."""
    pgid = proc.pid
    _killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE
    while time.monotonic() < end:
        drain.step(0.02)
        if proc.poll() is not None and not _group_alive(pgid):
            break
    _killpg(pgid, signal.SIGKILL)
    proc.wait()


class _Drain:
    """Reads the child's stdout and stderr as they come, keeping ``limit + 1`` bytes of each,
    and writes its ``stdin`` data as the pipe takes it."""

    def __init__(self, proc: Child, result: ProcResult, limit: int,
                 stdin: Optional[bytes] = None) -> None:
        self.keep = limit + 1
        self.poller = select.poll()
        self.bufs: Dict[int, bytearray] = {}
        self.proc = proc
        for fd, buf in ((proc.stdout, result.stdout), (proc.stderr, result.stderr)):
            self.bufs[fd] = buf
            self.poller.register(fd, select.POLLIN)
        self.feed: Optional[memoryview] = None
        if proc.stdin is not None:
            if stdin:
                os.set_blocking(proc.stdin, False)
                self.feed = memoryview(stdin)
                self.poller.register(proc.stdin, select.POLLOUT)
            else:
                self._stdin_done()

    @property
    def open(self) -> bool:
        return bool(self.bufs)

    def _stdin_done(self) -> None:
        fd, self.proc.stdin = self.proc.stdin, None
        if self.feed is not None and fd is not None:
            self.poller.unregister(fd)
            self.feed = None
        if self.proc._popen is not None and self.proc._popen.stdin is not None:
            try:
                self.proc._popen.stdin.close()
            except OSError:
                pass
        else:
            _close(fd)

    def _write(self) -> None:
        assert self.feed is not None and self.proc.stdin is not None
        try:
            written = os.write(self.proc.stdin, self.feed[:_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the child exited or closed its stdin without reading everything
            self._stdin_done()
            return
        self.feed = self.feed[written:]
        if not self.feed:
            self._stdin_done()

    def step(self, wait: float) -> None:
        if not self.bufs and self.feed is None:
            time.sleep(wait)
            return
        for fd, _events in self.poller.poll(max(0, int(wait * 1000))):
            if fd == self.proc.stdin:
                self._write()
                continue
            try:
                chunk = os.read(fd, _CHUNK)
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


def _close_inherited() -> None:
    """Like Popen's ``close_fds``: no descriptor but 0-2 reaches the child. Python opens
    everything non-inheritable; this catches what the executor itself inherited."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed by now


def _candidates(name: str, env: Optional[Dict[str, str]]) -> List[str]:
    """Where ``name`` is looked up, as ``Popen`` looks it up (the child's PATH)."""
    if os.path.dirname(name):
        return [name]
    # os.get_exec_path's own lookup, without the ``warnings`` import it costs at start-up.
    path = (os.environ if env is None else env).get("PATH")
    folders = (os.defpath if path is None else path).split(os.pathsep)
    return [os.path.join(folder, name) for folder in folders]


def _spawn(argv: List[str], env: Optional[Dict[str, str]], stdin: bool) -> Optional[Child]:
    """Start ``argv`` with ``posix_spawn``; None when it cannot (use Popen)."""
    if _posix_spawn is None or not argv:
        return None
    fds: List[int] = []
    try:
        out_r, out_w = os.pipe()
        fds += (out_r, out_w)
        err_r, err_w = os.pipe()
        fds += (err_r, err_w)
        in_r = in_w = None
        if stdin:
            in_r, in_w = os.pipe()
            fds += (in_r, in_w)
        if min(fds) <= 2:  # the executor runs without a standard descriptor: Popen copes
            _none(fds)
            return None
        actions: List[Any] = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        if in_r is not None:
            actions.append((os.POSIX_SPAWN_DUP2, in_r, 0))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0))
        _close_inherited()
        child_env = _environment() if env is None else env
        error: Optional[OSError] = None
        pid = None
        for path in _candidates(argv[0], env):
            try:
                os.stat(path)  # a spawn that fails costs a fork: skip what is not there
                pid = _posix_spawn(path, argv, child_env, file_actions=actions, setsid=True,
                                   setsigdef=_RESTORED_SIGNALS)
                break
            except (FileNotFoundError, NotADirectoryError) as exc:
                error = error if error is not None and error.errno not in (2, 20) else exc
            except NotImplementedError:  # no POSIX_SPAWN_SETSID in this C library
                _none(fds)
                return None
            except OSError as exc:  # as Popen: the first real error wins, the search goes on
                if error is None or error.errno in (2, 20):
                    error = exc
        if pid is None:
            raise error if error is not None else FileNotFoundError(2, os.strerror(2), argv[0])
    except BaseException:
        _none(fds)
        raise
    for fd in (out_w, err_w, in_r):
        _close(fd)
    return Child(pid, in_w, out_r, err_r)


def _environment() -> Any:
    """The executor's environment for a child. posix_spawn reads a mapping's keys and
    values: ``os.environ`` decodes each in Python code (a few hundred microseconds a
    step), its bytes dict is read in C and means the same."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else os.environ


def _none(fds: List[int]) -> None:
    for fd in fds:
        _close(fd)
    del fds[:]
    return None


def _popen(argv: List[str], env: Optional[Dict[str, str]], cwd: Optional[str],
           stdin: bool) -> Child:
    import subprocess

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    return Child(proc.pid, proc.stdin.fileno() if proc.stdin is not None else None,
                 proc.stdout.fileno(), proc.stderr.fileno(), proc)


def start(argv: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
          stdin: bool = False) -> Child:
    """Start ``argv`` in a new session with piped stdout/stderr (and stdin, or /dev/null)."""
    child = _spawn(argv, env, stdin) if cwd is None else None
    return child if child is not None else _popen(argv, env, cwd, stdin)


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
        proc = start(argv, env, cwd, stdin is not None)
    except OSError as exc:
        raise StepFailed("cannot run %s: %s" % (argv[0], exc.strerror or exc), rc=127) from None
    result = ProcResult()
    try:
        _supervise(proc, result, limit, cancel, timeout, stdin)
    finally:
        proc.close()
    result.rc = proc.returncode
    return result


def _supervise(
    proc: Child,
    result: ProcResult,
    limit: int,
    cancel: CancelToken,
    timeout: Optional[float],
    stdin: Optional[bytes],
) -> None:
    drain = _Drain(proc, result, limit, stdin)
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
            proc.wait(wait)
    kill_group(proc, drain)
