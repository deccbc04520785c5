"""The job store: jobs, their hosts' outcomes and every event, in SQLite or PostgreSQL.

The only package that imports SQLAlchemy or Alembic. ``JobStore.open(url)`` migrates the
database to the current schema; ``StoreSink`` writes a run's events as they arrive.
"""

from control_server.store.engine import ENV_DB, default_url
from control_server.store.jobstore import JobStore
from control_server.store.records import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    INTERRUPTED,
    JOB_STATE_EVENT,
    JOB_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    EventRecord,
    HostRecord,
    JobRecord,
    NewJob,
)
from control_server.store.sink import StoreSink

__all__ = [
    "CANCELLED",
    "ENV_DB",
    "FAILED",
    "FINAL_STATES",
    "INTERRUPTED",
    "JOB_STATES",
    "JOB_STATE_EVENT",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "EventRecord",
    "HostRecord",
    "JobRecord",
    "JobStore",
    "NewJob",
    "StoreSink",
    "default_url",
]
