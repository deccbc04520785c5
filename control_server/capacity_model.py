"""Each host's capacity as Nova's Placement counts it: what facts say the host has, its
overcommit ratios and reservations from inventory vars, and what claims hold of it.

    capacity = (total - reserved) * allocation_ratio      (Placement, per resource)
    free     = capacity - claimed

Reserved is taken off the physical total *before* the ratio, as Placement does: what the
host keeps for itself is real memory and disk, not overcommittable. Totals come from facts
(``memory.total`` bytes, ``cpu.count``, the size of the filesystem holding
``instances_path``); the vars are read from the host's resolved vars (host over group,
Ansible's precedence, as the inventory already resolves them):

- ``cpu_allocation_ratio``, ``ram_allocation_ratio``, ``disk_allocation_ratio``;
- ``reserved_memory_mib`` (Nova's ``reserved_host_memory_mb``, default 512 as Nova's),
  ``reserved_disk_gib`` (Nova's ``reserved_host_disk_mb``, default 0 as Nova's);
- ``instances_path``: where instance disks live (default ``/var/lib/libvirt/images``).

Pure: no store, no I/O. ``control_server.cli.hosts_cmds`` feeds it facts and claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_server.errors import InputError

MIB = 2**20
GIB = 2**30

# Nova's defaults for new compute nodes since 2023.1 (Antelope): initial_cpu_allocation_ratio
# 4.0 (16.0 before), initial_ram_allocation_ratio 1.0 (1.5 before),
# initial_disk_allocation_ratio 1.0; reserved_host_memory_mb 512, reserved_host_disk_mb 0.
# https://docs.openstack.org/nova/latest/configuration/config.html (DEFAULT section) and
# https://docs.openstack.org/nova/latest/admin/scheduling.html#allocation-ratios
DEFAULT_RATIOS = {"cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0,
                  "disk_allocation_ratio": 1.0}
DEFAULT_RESERVED_MEMORY_MIB = 512
DEFAULT_RESERVED_DISK_GIB = 0
DEFAULT_INSTANCES_PATH = "/var/lib/libvirt/images"
NO_FACTS = "no facts yet (run host_facts)"

RESOURCES = (("memory_mib", "ram_allocation_ratio"), ("vcpus", "cpu_allocation_ratio"),
             ("disk_gib", "disk_allocation_ratio"))


@dataclass(frozen=True)
class Resource:
    """One resource of one host; ``total`` None when facts do not say it."""

    total: int | None
    ratio: float
    reserved: int
    claimed: int

    @property
    def capacity(self) -> int | None:
        if self.total is None:
            return None
        # int() as Placement does: a fraction of a vCPU or MiB cannot be placed.
        return int((self.total - self.reserved) * self.ratio)

    @property
    def free(self) -> int | None:
        capacity = self.capacity
        return None if capacity is None else capacity - self.claimed

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "ratio": self.ratio, "reserved": self.reserved,
                "capacity": self.capacity, "claimed": self.claimed, "free": self.free}


@dataclass(frozen=True)
class HostCapacity:
    host: str
    memory_mib: Resource
    vcpus: Resource
    disk_gib: Resource
    facts_at: float | None = None
    problem: str | None = None  # why totals are missing: no facts, a group not gathered

    def resources(self) -> dict[str, Resource]:
        return {"memory_mib": self.memory_mib, "vcpus": self.vcpus, "disk_gib": self.disk_gib}

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "facts_at": self.facts_at, "problem": self.problem,
                **{name: r.as_dict() for name, r in self.resources().items()}}


@dataclass(frozen=True)
class Claimed:
    """What held claims add up to on one host (``store.capacity.Usage``'s figures)."""

    memory_mib: int = 0
    vcpus: int = 0
    disk_gib: int = 0


def _number(host: str, hostvars: Mapping[str, Any], name: str, default: float) -> float:
    value = hostvars.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"host {host}: {name} = {value!r} is not a number") from None
    if number < 0:
        raise InputError(f"host {host}: {name} = {value!r} is negative")
    return number


def _group(facts: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    group = facts.get(name)
    # A group that could not be read on the host is {"error": ...}: no figures from it.
    return group if isinstance(group, Mapping) and "error" not in group else {}


def _disk_bytes(facts: Mapping[str, Any], path: str) -> int | None:
    """The size of the filesystem holding ``path``: the longest mount point above it."""
    disks = facts.get("disks")
    if not isinstance(disks, list):
        return None
    best: tuple[int, int] | None = None
    for disk in disks:
        if not isinstance(disk, Mapping) or not isinstance(disk.get("size"), int | float):
            continue
        mount = str(disk.get("mount") or "")
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) > best[0]):
            best = (len(mount), int(disk["size"]))
    return None if best is None else best[1]


def totals(facts: Mapping[str, Any], instances_path: str = DEFAULT_INSTANCES_PATH
           ) -> dict[str, int | None]:
    """What the host has, from its facts: memory MiB, vCPUs, GiB of instance disk."""
    memory = _group(facts, "memory").get("total")
    cpus = _group(facts, "cpu").get("count")
    disk = _disk_bytes(facts, instances_path)
    return {
        "memory_mib": int(memory) // MIB if isinstance(memory, int | float) else None,
        "vcpus": int(cpus) if isinstance(cpus, int | float) else None,
        "disk_gib": disk // GIB if disk is not None else None,
    }


def host_capacity(host: str, hostvars: Mapping[str, Any], facts: Mapping[str, Any] | None,
                  claimed: Claimed = Claimed(), facts_at: float | None = None
                  ) -> HostCapacity:
    """``host``'s capacity; raises ``InputError`` naming the host and var for a bad var."""
    ratios = {name: _number(host, hostvars, name, default)
              for name, default in DEFAULT_RATIOS.items()}
    reserved = {
        "memory_mib": int(_number(host, hostvars, "reserved_memory_mib",
                                  DEFAULT_RESERVED_MEMORY_MIB)),
        "vcpus": 0,
        "disk_gib": int(_number(host, hostvars, "reserved_disk_gib",
                                DEFAULT_RESERVED_DISK_GIB)),
    }
    path = str(hostvars.get("instances_path") or DEFAULT_INSTANCES_PATH)
    have = totals(facts, path) if facts else dict.fromkeys(reserved)
    if not facts:
        problem: str | None = NO_FACTS
    else:
        missing = [name for name, total in have.items() if total is None]
        problem = f"facts lack {', '.join(missing)}" if missing else None
    made = {name: Resource(have[name], ratios[ratio], reserved[name],
                           int(getattr(claimed, name)))
            for name, ratio in RESOURCES}
    return HostCapacity(host, made["memory_mib"], made["vcpus"], made["disk_gib"],
                        facts_at, problem)
