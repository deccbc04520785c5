"""What the job store hands back: plain frozen dataclasses, no SQLAlchemy rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENV_DB = "HOSTPLANE_DB"  # the job store URL, when no --db is given

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED, CANCELLED)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
# `interrupted` is not final: `jobs resume` takes the job up again.
ACTIVE_STATES = frozenset({QUEUED, RUNNING})

# A job host's state: these two, then the HostFinished status (ok, failed, ...).
HOST_PENDING = "pending"
HOST_RUNNING = "running"
HOST_CANCELLED = "cancelled"

JOB_STATE_EVENT = "job_state"  # an event the store adds itself: the job changed state


@dataclass(frozen=True)
class NewJob:
    """A job to create; ``vars`` must already have its secrets redacted."""

    kind: str  # template | adhoc
    what: str
    pattern: str
    hosts: tuple[tuple[str, str | None], ...]  # (host, request id), in run order
    who: str
    limit: str | None = None
    check: bool = False
    vars: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HostRecord:
    host: str
    position: int
    request_id: str | None
    state: str
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None  # the HostFinished event as a dict
    attempts: int


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    what: str
    pattern: str
    limit: str | None
    check: bool
    vars: dict[str, Any]
    task: dict[str, Any]
    config: dict[str, Any]
    inventory: dict[str, Any]
    who: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    error: str | None
    stopped_early: str | None
    owner_host: str | None
    owner_pid: int | None
    cancel_requested: bool
    last_seq: int
    hosts: tuple[HostRecord, ...] = ()

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class EventRecord:
    job_id: int
    seq: int
    host: str | None
    kind: str
    time: float
    payload: dict[str, Any]
