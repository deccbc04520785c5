"""Who owns a running job, and whether that owner is still alive.

A job records its owner's host name, pid, the kernel's boot id and the process's start
time. On the same machine, the owner is alive when the boot id is unchanged and a process
with that pid exists AND started at the recorded time (pids are reused). An owner on
another machine (control servers sharing PostgreSQL) cannot be checked that way: it is
alive while its heartbeat is fresh.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_INTERVAL = 5.0  # seconds between a running job's heartbeats (and cancel checks)
HEARTBEAT_STALE = 60.0  # an owner elsewhere silent this long is gone


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    boot: str
    start: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" if unknown, gone or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return "dead"  # killed, not yet reaped by its parent: gone all the same
    return fields[19] if len(fields) > 19 else ""


def current() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, boot_id(), process_start(pid))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def is_alive(owner: Owner, heartbeat_at: float | None, now: float) -> bool:
    """Whether the process that owns a job is still there (see the module docstring)."""
    me = current()
    if owner.host != me.host:
        return heartbeat_at is not None and now - heartbeat_at < HEARTBEAT_STALE
    if owner.boot and me.boot and owner.boot != me.boot:
        return False
    if owner.pid == me.pid:
        return owner.start == me.start
    if not _pid_exists(owner.pid):
        return False
    start = process_start(owner.pid)
    if start == "dead":
        return False
    # Without /proc (not Linux) the start time is unknown: a live pid has to do.
    return not (owner.start and start) or start == owner.start
