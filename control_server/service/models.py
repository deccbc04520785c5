"""The HTTP API's bodies (pydantic): what ``docs/openapi.json`` describes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_TEMPLATE_NAME = r"^[A-Za-z0-9_-]+$"  # never a path: see templating.TemplateLibrary._find
MAX_ID = 2**62  # beyond what SQLite and PostgreSQL integers hold


class _Strict(BaseModel):
    # No coercion ("1" is not 1, 1.0 is not an int) and no unknown keys: a request means
    # what it says, or is refused naming the field.
    model_config = ConfigDict(extra="forbid", strict=True)


class PlacementSpec(_Strict):
    """What the instance needs; the server picks the host."""

    memory_mib: int = Field(ge=1, le=2**40, description="Memory the instance needs, MiB.")
    vcpus: int = Field(1, ge=1, le=4096, description="Virtual CPUs the instance needs.")
    tags: list[str] = Field(default_factory=list, max_length=64,
                            description="Capability tags the host must carry (all of them).")
    tenant: str | None = Field(None, max_length=200, description="The instance's tenant.")
    dedicated: bool = Field(False, description="Only hosts dedicated to the tenant.")


class PlacementTarget(_Strict):
    placement: PlacementSpec


class ConfigurationRequest(_Strict):
    """Run ``template`` on the hosts ``target`` names (a host pattern), or on the host
    placement picks for an instance."""

    template: str = Field(min_length=1, max_length=200, pattern=_TEMPLATE_NAME,
                          examples=["host_facts"])
    target: str | PlacementTarget = Field(
        description="A host pattern ('kvm:&rack1'), or {placement: {...}}.",
        examples=["all", {"placement": {"memory_mib": 512, "vcpus": 1, "tags": ["kvm"]}}],
    )
    vars: dict[str, Any] = Field(default_factory=dict,
                                 description="The template's params (nothing else).")
    check: bool = Field(False, description="Report what would change; change nothing.")


class Accepted(BaseModel):
    job_id: int
    state: str
    url: str
    events_url: str


class StepCountsModel(BaseModel):
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0


class StepResult(BaseModel):
    index: int | None = None
    name: str | None = None
    action: str | None = None
    status: str | None = None
    rc: int | None = None
    msg: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    duration: float | None = None
    data: dict[str, Any] | None = None


class HostResult(BaseModel):
    host: str
    state: str = Field(description="pending, running, ok, failed, unreachable, skipped, "
                                   "cancelled")
    error: str | None = None
    error_kind: str | None = None
    counts: StepCountsModel = Field(default_factory=StepCountsModel)
    duration: float | None = None
    executor_rc: int | None = None
    request_id: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    steps: list[StepResult] = Field(default_factory=list)


class JobSummary(BaseModel):
    id: int
    kind: str
    what: str
    pattern: str
    state: str = Field(description="queued, running, succeeded, failed, interrupted, "
                                   "cancelled")
    who: str
    check: bool
    vars: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    stopped_early: str | None = None
    cancel_requested: bool = False
    last_seq: int = 0


class JobDetail(JobSummary):
    hosts: list[HostResult]
    placement: dict[str, Any] | None = Field(
        None, description="The placement decision: host, reason, excluded, candidates.")


class JobList(BaseModel):
    jobs: list[JobSummary]


class CancelResult(BaseModel):
    job_id: int
    state: str
    cancel_requested: bool


class Capacity(BaseModel):
    memory_left_mib: int
    vcpus_left: float


class ResourceCapacity(BaseModel):
    total: int | None = Field(None, description="What the host has, from its facts "
                              "(null: the facts do not say).")
    ratio: float = Field(description="The allocation ratio (overcommit).")
    reserved: int = Field(description="Kept for the host itself, off the total.")
    capacity: int | None = Field(None, description="(total - reserved) * ratio.")
    claimed: int = Field(description="What held capacity claims in the store add up to.")
    free: int | None = Field(None, description="capacity - claimed.")


class HostResources(BaseModel):
    """As ``hostplane hosts`` shows it: the same figures on every server of the store."""

    problem: str | None = Field(None, description="Why figures are missing: no facts yet, "
                                "facts lacking a group, a var that is not a number.")
    memory_mib: ResourceCapacity | None = None
    vcpus: ResourceCapacity | None = None
    disk_gib: ResourceCapacity | None = None


class HostInfo(BaseModel):
    name: str
    groups: list[str]
    vars: dict[str, Any] = Field(description="Connection and placement vars only.")
    tags: list[str]
    dedicated_to: str | None = None
    reachable: bool | None = Field(None, description="null: not contacted yet")
    last_seen: float | None = None
    last_error: str | None = None
    facts_at: float | None = None
    facts: dict[str, Any] | None = None
    capacity: Capacity | None = None
    resources: HostResources | None = Field(None, description=(
        "Per resource (memory MiB, vCPUs, disk GiB): total, ratio, reserved, capacity, "
        "claimed and free."))
    instances: int = 0


class HostList(BaseModel):
    hosts: list[HostInfo]


class InstanceInfo(BaseModel):
    host: str
    name: str
    state: str
    uuid: str | None = None
    memory_mib: int = 0
    vcpus: int = 0
    updated_at: float
    job_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class InstanceList(BaseModel):
    instances: list[InstanceInfo]


class PlacementRejected(BaseModel):
    detail: str
    excluded: dict[str, str] = Field(description="Host -> the requirement that excluded it.")
    placement: dict[str, Any]


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationFailed(BaseModel):
    detail: list[ErrorItem]


class JobEvent(BaseModel):
    """The ``data`` of a job event stream's event (its ``id`` is ``seq``)."""

    job_id: int
    seq: int
    host: str | None
    kind: str = Field(description="job_state, placement, run_start, host_start, executor, "
                                  "host_end, run_end, ...")
    time: float
    payload: dict[str, Any]


class HostEventData(BaseModel):
    """The ``data`` of a host event stream's event (its ``id`` is ``id``)."""

    id: int
    host: str
    kind: str = Field(description="instance_state, host_reachable, host_unreachable, ...")
    instance: str | None
    time: float
    payload: dict[str, Any]
    received_by: str | None


class Message(BaseModel):
    detail: str


class Failure(BaseModel):
    """A request that could not be served (503: the job store is busy, retry; 500: a bug
    whose traceback is in serve's log)."""

    detail: str = Field(description="What was being done, and what failed.")
    job_id: int | None = Field(None, description="The job concerned, when there is one.")


class Health(BaseModel):
    status: str
    version: str
    facts_ready: bool = Field(description="The start-up facts gathering is over.")
