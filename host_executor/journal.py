"""The host-side journal: every event the executor emits, appended to
``<cache>/journal/<request id>.jsonl``.

It is how the control server reads a whole result back after a lost connection
(``--journal ID``), or follows a detached sequence to its end (``--journal ID --follow``).
The executor holds an exclusive ``flock`` on its journal for its whole life: a journal
without ``done`` whose lock is free belongs to an executor that died. A request id runs once
per host: a journal that exists already refuses a second run of it (exactly once). Lines are fsync'd at the events that end something (``step_end``,
``rollback_step_end``, ``rollback_end``, ``done``, ``error``), so what a controller may have
acted on is on disk. Journals older than ``MAX_AGE`` are pruned opportunistically.
"""

from __future__ import annotations

import fcntl
import os
import time

from host_executor import jsonfast, paths
from host_executor.errors import ExecutorDied, RequestReused, UnknownJournal

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Iterator, List, Optional

MAX_AGE = 7 * 24 * 3600
PRUNE_EVERY = 3600
SUFFIX = ".jsonl"
# A lost connection loses nothing the page cache holds: only the end of a run is forced to
# disk (a per-step sync cost up to 100 ms of wall on a busy disk, for a host crash only).
SYNC_EVENTS = frozenset(("rollback_end", "done", "error"))
# fdatasync skips flushing timestamps, which nobody needs back after a crash.
_sync = getattr(os, "fdatasync", os.fsync)


def journal_path(request_id: str, create_dir: bool = False) -> str:
    folder = paths.state_dir("journal") if create_dir else os.path.join(paths.cache_dir(), "journal")
    return os.path.join(folder, paths.safe_name(request_id) + SUFFIX)


class Journal:
    """An append-only event log for one request; a failing disk never fails the run."""

    def __init__(self, request_id: str) -> None:
        self.path = journal_path(request_id, create_dir=True)
        self._fd: Optional[int] = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self.error: Optional[str] = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # A new journal (the usual case) is empty: nothing to read back or cut.
            size = os.fstat(self._fd).st_size
            reused = size > 0 and _ran_steps(self.path)
            if size and not reused:
                os.ftruncate(self._fd, 0)  # a request refused before any step: run it now
        except OSError:
            reused = True
        if reused:
            self.close()
            raise RequestReused(
                "request %r already ran on this host (its journal exists): it is never run "
                "twice; read it with --journal" % request_id
            )

    def append(self, line: bytes, event: str) -> None:
        if self._fd is None:
            return
        try:
            write_all(self._fd, line)
            if event in SYNC_EVENTS:
                _sync(self._fd)
        except OSError as exc:
            self.error = "%s: %s" % (self.path, exc)
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_journal(request_id: str) -> bytes:
    """The raw JSON Lines of one request's journal; ``UnknownJournal`` if there is none."""
    path = journal_path(request_id)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UnknownJournal("no journal for request %r on this host" % request_id) from None
    except OSError as exc:
        raise UnknownJournal("cannot read the journal of request %r: %s" % (request_id, exc)) from None


def _ran_steps(path: str) -> bool:
    """Whether the journal at ``path`` shows a step that started."""
    with open(path, "rb") as handle:
        return b'"event":"step_start"' in handle.read()


def writer_alive(fd: int) -> bool:
    """True while the executor that writes this journal holds its lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _ends(data: bytes) -> bool:
    """Whether the journaled lines include the sequence's end (``done`` or ``error``)."""
    for raw in data.splitlines():
        if b'"event":"done"' in raw or b'"event":"error"' in raw:  # cheap filter first
            try:
                if jsonfast.loads(raw).get("event") in ("done", "error"):
                    return True
            except (ValueError, AttributeError):
                continue
    return False


def follow_journal(request_id: str, emit: Any, gone: Any, poll: float = 0.2,
                   tick: Any = None) -> None:
    """Pass the journal's bytes to ``emit`` as they are written, until its end; raise
    ``ExecutorDied`` when the writer is gone without one. ``gone()`` stops following;
    ``tick()``, when given, is called once per poll."""
    path = journal_path(request_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnknownJournal("no journal for request %r on this host" % request_id) from None
    except OSError as exc:
        raise UnknownJournal("cannot read the journal of request %r: %s" % (request_id, exc)) from None
    tail = b""
    try:
        while not gone():
            alive = writer_alive(fd)  # asked BEFORE reading: what it wrote is then on file
            chunk = _read_rest(fd)
            whole, _, tail = (tail + chunk).rpartition(b"\n")
            if whole:
                emit(whole + b"\n")
                if _ends(whole):
                    return
            if not alive:
                raise ExecutorDied(
                    "the executor of request %r is gone and its journal has no end (it was "
                    "killed, or the host restarted)" % request_id
                )
            if tick is not None:
                tick()
            time.sleep(poll)
    finally:
        os.close(fd)


def writer_pid(request_id: str) -> Optional[int]:
    """The pid of the live executor writing this journal: the ``hello`` pid, and only if
    that process holds the journal open (so a reused pid is never signalled)."""
    path = journal_path(request_id)
    try:
        with open(path, "rb") as handle:
            hello = jsonfast.loads(handle.readline())
        pid = int(hello["pid"])
        target = os.path.realpath(path)
        for name in os.listdir("/proc/%d/fd" % pid):
            if os.path.realpath("/proc/%d/fd/%s" % (pid, name)) == target:
                return pid
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def _read_rest(fd: int) -> bytes:
    parts = []  # type: List[bytes]
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def _journal_files() -> Iterator[str]:
    folder = os.path.join(paths.cache_dir(), "journal")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if name.endswith(SUFFIX):
            yield os.path.join(folder, name)


def summarize(path: str) -> Dict[str, Any]:
    """One journal's request id, final status and exit code ("incomplete" while running)."""
    summary: Dict[str, Any] = {
        "id": os.path.basename(path)[: -len(SUFFIX)],
        "status": "incomplete",
        "exit": None,
        "mtime": None,
    }
    try:
        summary["mtime"] = round(os.stat(path).st_mtime, 3)
        with open(path, "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return summary
    for raw in lines:
        try:
            event = jsonfast.loads(raw)
        except ValueError:
            continue  # a line cut short by a crash
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "hello" and isinstance(event.get("id"), str):
            summary["id"] = event["id"]
        elif kind == "done":
            summary["status"] = event.get("status")
            summary["exit"] = event.get("exit")
        elif kind == "error":
            summary["status"] = "error:%s" % event.get("code")
            summary["exit"] = event.get("exit")
    return summary


def list_journals() -> List[Dict[str, Any]]:
    return [summarize(path) for path in _journal_files()]


def prune_if_due(every: float = PRUNE_EVERY) -> int:
    """``prune`` at most once per ``every`` seconds (a stamp file's mtime says when), so a
    busy host does not scan its journals on every run."""
    stamp = os.path.join(paths.cache_dir(), "journal", ".pruned")
    now = time.time()
    try:
        if now - os.stat(stamp).st_mtime < every:
            return 0
    except FileNotFoundError:
        pass
    os.close(os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.utime(stamp, (now, now))
    return prune(now=now)


def prune(max_age: float = MAX_AGE, now: Optional[float] = None) -> int:
    """Remove journals older than ``max_age`` seconds; return how many went."""
    limit = (time.time() if now is None else now) - max_age
    removed = 0
    for path in _journal_files():
        try:
            if os.stat(path).st_mtime < limit:
                os.unlink(path)
                removed += 1
        except OSError:
            continue
    return removed
