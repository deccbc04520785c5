"""Store records and fleet state as the API's response models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from control_server.capacity_model import Claimed, host_capacity
from control_server.errors import InputError
from control_server.placement import HostState, capacity, host_tags
from control_server.service.intake import PLACEMENT_EVENT
from control_server.service.models import (
    Capacity,
    HostInfo,
    HostResources,
    HostResult,
    InstanceInfo,
    JobDetail,
    JobSummary,
    StepCountsModel,
    StepResult,
)
from control_server.service.state import FleetState, InstanceRecord
from control_server.store.capacity import Usage
from control_server.store.jobstore import JobStore
from control_server.store.records import EventRecord, JobRecord

# Host vars shown by GET /v1/hosts: how it is reached and what placement reads. Anything
# else (passwords, keys, vault values) stays out.
SHOWN_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection",
              "capabilities", "dedicated_to", "reserved_memory_mib", "reserved_disk_gib",
              "cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio",
              "instances_path")
_STEP_FIELDS = ("index", "name", "action", "status", "rc", "msg", "stdout", "stderr",
                "duration", "data")


def job_summary(job: JobRecord) -> JobSummary:
    return JobSummary(
        id=job.id, kind=job.kind, what=job.what, pattern=job.pattern, state=job.state,
        who=job.who, check=job.check, vars=job.vars, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, exit_code=job.exit_code,
        error=job.error, stopped_early=job.stopped_early,
        cancel_requested=job.cancel_requested, last_seq=job.last_seq,
    )


def _steps(events: list[EventRecord]) -> dict[str, dict[int, StepResult]]:
    """Each host's step results; a step run again (``jobs resume``) keeps its last end."""
    out: dict[str, dict[int, StepResult]] = {}
    for record in events:
        event = record.payload.get("event")
        if record.host is None or not isinstance(event, dict):
            continue
        if event.get("event") != "step_end" or not isinstance(event.get("index"), int):
            continue
        fields = {k: event.get(k) for k in _STEP_FIELDS}
        if not isinstance(fields["data"], dict):
            fields["data"] = None
        out.setdefault(record.host, {})[event["index"]] = StepResult.model_validate(fields)
    return out


def job_detail(store: JobStore, job_id: int) -> JobDetail | None:
    job = store.get_job(job_id)
    if job is None:
        return None
    events = store.events(job_id, kinds=("executor", PLACEMENT_EVENT))
    steps = _steps([e for e in events if e.kind == "executor"])
    placement = next((e.payload for e in reversed(events) if e.kind == PLACEMENT_EVENT), None)
    hosts = []
    for host in job.hosts:
        result: dict[str, Any] = host.result or {}
        hosts.append(HostResult(
            host=host.host, state=host.state, error=result.get("error"),
            error_kind=result.get("error_kind"),
            counts=StepCountsModel.model_validate(result.get("counts") or {}),
            duration=result.get("duration"), executor_rc=result.get("executor_rc"),
            request_id=host.request_id, attempts=host.attempts,
            started_at=host.started_at, finished_at=host.finished_at,
            steps=[s for _, s in sorted(steps.get(host.host, {}).items())],
        ))
    return JobDetail(**job_summary(job).model_dump(), hosts=hosts, placement=placement)


def _plain(value: Any) -> Any:
    # Inventory values may be str subclasses (unsafe, vault) or YAML types: plain JSON.
    return json.loads(json.dumps(value, default=str))


def host_resources(placed: HostState, facts_at: float | None, held: Usage) -> HostResources:
    """The capacity model's figures with the store's claims (``hostplane hosts``' view)."""
    try:
        model = host_capacity(placed.name, placed.hostvars, placed.facts,
                              Claimed(held.memory_mib, held.vcpus, held.disk_gib), facts_at)
    except InputError as exc:  # a var that is not a number: said, not a 500
        return HostResources(problem=str(exc))
    return HostResources.model_validate(model.as_dict())


def host_infos(state: FleetState, held: Mapping[str, Usage]) -> list[HostInfo]:
    """Every host; ``held`` is what capacity claims hold of each (``capacity.usage``)."""
    counts: dict[str, int] = {}
    for name, _instance in state.instances:
        counts[name] = counts.get(name, 0) + 1
    out = []
    for placed in state.host_states():
        status = state.status(placed.name)
        host = state.inventory.host(placed.name)
        left = capacity(placed)
        owner = placed.hostvars.get("dedicated_to")
        out.append(HostInfo(
            name=placed.name, groups=list(host.groups),
            vars={k: _plain(placed.hostvars[k]) for k in SHOWN_VARS if k in placed.hostvars},
            tags=sorted(host_tags(placed)), dedicated_to=str(owner) if owner else None,
            reachable=status.reachable, last_seen=status.last_seen,
            last_error=status.last_error, facts_at=status.facts_at, facts=status.facts,
            capacity=Capacity(memory_left_mib=left[0], vcpus_left=left[1]) if left else None,
            resources=host_resources(placed, status.facts_at, held.get(placed.name, Usage())),
            instances=counts.get(placed.name, 0),
        ))
    return out


def instance_info(record: InstanceRecord) -> InstanceInfo:
    return InstanceInfo(host=record.host, name=record.name, state=record.state,
                        uuid=record.uuid, memory_mib=record.memory_mib, vcpus=record.vcpus,
                        updated_at=record.updated_at, job_id=record.job_id,
                        data=record.data)
