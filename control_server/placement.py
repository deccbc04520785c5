"""Placement: pick the host for an instance when a request names none.

A host is a candidate when it has the capacity, carries every required capability tag, and
its dedication allows the tenant. Capacity is accounted from the host's totals, not its
momentary free memory, so instances that are already running are not counted twice:

    memory left = (facts memory total - reserved_memory_mib) * ram_allocation_ratio
                  - memory of the host's instances
    vCPUs left  = facts CPU count * cpu_allocation_ratio - vCPUs of the host's instances

as ``control_server.capacity_model`` counts them (Nova's Placement formula and defaults:
reserved 512 MiB, ratios cpu 4.0, ram 1.0; host or group vars override them). A host whose
var is not a number is excluded, the reason naming the var.

Tags come from the inventory (``capabilities: [gpu, nvme]``) and from facts (``kvm`` when
KVM is usable). A host with ``dedicated_to: TENANT`` takes only that tenant's instances; a
request with ``dedicated: true`` goes only to hosts dedicated to its tenant. Among the
candidates the one with the most memory left wins (spreading load), then the most vCPUs
left, then the name. When nothing fits, the answer names what excluded each host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from control_server.capacity_model import NO_FACTS, Claimed, HostCapacity, host_capacity
from control_server.errors import InputError


@dataclass(frozen=True)
class PlacementRequest:
    memory_mib: int
    vcpus: int = 1
    tags: tuple[str, ...] = ()
    tenant: str | None = None
    dedicated: bool = False


@dataclass(frozen=True)
class Instance:
    name: str
    memory_mib: int
    vcpus: int


@dataclass(frozen=True)
class HostState:
    """What placement knows of one host: inventory vars, last facts, its instances."""

    name: str
    hostvars: Mapping[str, Any]
    facts: Mapping[str, Any] | None
    instances: Sequence[Instance] = ()
    reachable: bool = True


@dataclass(frozen=True)
class Candidate:
    host: str
    memory_left_mib: int
    vcpus_left: float


@dataclass(frozen=True)
class PlacementDecision:
    host: str | None
    reason: str
    excluded: dict[str, str] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reason": self.reason,
            "excluded": dict(self.excluded),
            "candidates": [c.__dict__ for c in self.candidates],
        }


def host_tags(state: HostState) -> set[str]:
    tags: set[str] = set()
    caps = state.hostvars.get("capabilities") or []
    if isinstance(caps, str):
        caps = [c.strip() for c in caps.split(",")]
    tags.update(str(c) for c in caps if str(c))
    kvm = (state.facts or {}).get("kvm")
    if isinstance(kvm, dict) and kvm.get("usable"):
        tags.add("kvm")
    return tags


def _model(state: HostState) -> HostCapacity | str:
    """The host's capacity, its instances as the claims; a bad var's message instead."""
    used = Claimed(sum(i.memory_mib for i in state.instances),
                   sum(i.vcpus for i in state.instances))
    try:
        return host_capacity(state.name, state.hostvars, state.facts, used)
    except InputError as exc:
        return str(exc)


def capacity(state: HostState) -> tuple[int, float] | None:
    """(memory MiB left, vCPUs left), or None when the host has no facts yet (or a var
    that is not a number)."""
    model = _model(state)
    if isinstance(model, str) or model.memory_mib.free is None or model.vcpus.free is None:
        return None
    return model.memory_mib.free, model.vcpus.free


def _exclusion(state: HostState, req: PlacementRequest) -> str | Candidate:
    """Why ``state`` cannot take ``req``, or the candidate it would be."""
    owner = state.hostvars.get("dedicated_to")
    if not state.reachable:
        return "unreachable"
    if owner and owner != req.tenant:
        return f"dedicated to tenant {owner}"
    if req.dedicated and owner != req.tenant:
        return f"not dedicated to tenant {req.tenant}"
    missing = sorted(set(req.tags) - host_tags(state))
    if missing:
        return "lacks tags " + ", ".join(missing)
    model = _model(state)
    if isinstance(model, str):
        return model
    memory_left, vcpus_left = model.memory_mib.free, model.vcpus.free
    if memory_left is None or vcpus_left is None:
        return model.problem or NO_FACTS
    if memory_left < req.memory_mib:
        return f"memory: {memory_left} MiB left < {req.memory_mib} MiB asked"
    if vcpus_left < req.vcpus:
        return f"vcpus: {vcpus_left:g} left < {req.vcpus} asked"
    return Candidate(state.name, memory_left - req.memory_mib, vcpus_left - req.vcpus)


def place(hosts: Iterable[HostState], req: PlacementRequest) -> PlacementDecision:
    excluded: dict[str, str] = {}
    candidates: list[Candidate] = []
    for state in hosts:
        verdict = _exclusion(state, req)
        if isinstance(verdict, Candidate):
            candidates.append(verdict)
        else:
            excluded[state.name] = verdict
    if not candidates:
        detail = "; ".join(f"{h}: {why}" for h, why in excluded.items()) or "no hosts"
        return PlacementDecision(None, f"no host fits ({detail})", excluded)
    candidates.sort(key=lambda c: (-c.memory_left_mib, -c.vcpus_left, c.host))
    best = candidates[0]
    reason = (
        f"{best.host}: most capacity left after placement ({best.memory_left_mib} MiB, "
        f"{best.vcpus_left:g} vCPUs) among {len(candidates)} candidate(s)"
    )
    return PlacementDecision(best.host, reason, excluded, tuple(candidates))
