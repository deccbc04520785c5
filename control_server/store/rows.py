"""What both job writers share, without SQLAlchemy: the JSON text of a row's values, this
process as a job's owner, the store's default location, and rows read back as records.
``JobStore`` (SQLAlchemy) and the CLI's lean ``SqliteWriter`` (``sqlite3``) must write
the same text and read the same records, so they take them from here."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from control_server.store import owner as owners
from control_server.store.records import ENV_DB, HostRecord, JobRecord

_OWNER: list[owners.Owner] = []


def me() -> owners.Owner:
    """This process as a job's owner, read once (``/proc`` reads; a fork reads again)."""
    if not _OWNER or _OWNER[0].pid != os.getpid():
        _OWNER[:] = [owners.current()]
    return _OWNER[0]


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def state_dir() -> Path:
    """``$XDG_STATE_HOME/hostplane`` (``~/.local/state/hostplane`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "hostplane"


def default_url() -> str:
    """``$HOSTPLANE_DB``, else the SQLite file under the user's state directory."""
    configured = os.environ.get(ENV_DB)
    if configured:
        return configured
    return f"sqlite:///{state_dir() / 'hostplane.db'}"


def job_record(row: Mapping[Any, Any], hosts: tuple[HostRecord, ...] = ()) -> JobRecord:
    return JobRecord(
        id=int(row["id"]), kind=row["kind"], what=row["what"], pattern=row["pattern"],
        limit=row["limit_pattern"], check=bool(row["check_mode"]),
        vars=loads(row["vars"]) or {}, task=loads(row["task"]) or {},
        config=loads(row["config"]) or {}, inventory=loads(row["inventory"]) or {},
        who=row["who"], state=row["state"], created_at=float(row["created_at"]),
        started_at=row["started_at"], finished_at=row["finished_at"],
        exit_code=row["exit_code"], error=row["error"], stopped_early=row["stopped_early"],
        owner_host=row["owner_host"], owner_pid=row["owner_pid"],
        cancel_requested=bool(row["cancel_requested"]), last_seq=int(row["last_seq"]),
        hosts=hosts,
    )


def host_record(row: Mapping[Any, Any]) -> HostRecord:
    return HostRecord(
        host=row["host"], position=int(row["position"]), request_id=row["request_id"],
        state=row["state"], started_at=row["started_at"], finished_at=row["finished_at"],
        result=loads(row["result"]), attempts=int(row["attempts"]),
    )
