"""The capacity model's arithmetic: (total - reserved) * ratio - claimed, Nova's defaults,
ratios and reservations from vars, the disk holding instances_path, hosts without facts,
bad vars named with their host."""

from __future__ import annotations

from typing import Any

import pytest

from control_server.capacity_model import (
    GIB,
    NO_FACTS,
    Claimed,
    host_capacity,
    totals,
)
from control_server.errors import InputError


def _facts(memory_gib: int = 16, cpus: int = 8, disks: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    return {"memory": {"total": memory_gib * GIB, "available": 1}, "cpu": {"count": cpus},
            "disks": disks if disks is not None else [
                {"mount": "/", "size": 100 * GIB},
                {"mount": "/var/lib/libvirt", "size": 500 * GIB},
                {"mount": "/var/lib/libvirtx", "size": 7 * GIB}]}


def test_nova_defaults() -> None:
    cap = host_capacity("h1", {}, _facts())
    assert cap.problem is None
    assert cap.memory_mib.as_dict() == {"total": 16384, "ratio": 1.0, "reserved": 512,
                                        "capacity": 15872, "claimed": 0, "free": 15872}
    assert (cap.vcpus.total, cap.vcpus.ratio, cap.vcpus.capacity) == (8, 4.0, 32)
    # /var/lib/libvirt/images is on the /var/lib/libvirt mount, not / nor its look-alike.
    assert (cap.disk_gib.total, cap.disk_gib.reserved, cap.disk_gib.free) == (500, 0, 500)


def test_ratios_and_reservations_from_vars_then_claims() -> None:
    hostvars = {"cpu_allocation_ratio": "1.5", "ram_allocation_ratio": 1.5,
                "disk_allocation_ratio": "2", "reserved_memory_mib": "1024",
                "reserved_disk_gib": 100, "instances_path": "/srv/vms"}
    cap = host_capacity("h1", hostvars, _facts(), Claimed(10_000, 5, 30))
    # Reserved comes off the physical total before the ratio (Placement's formula).
    assert cap.memory_mib.capacity == int((16384 - 1024) * 1.5) == 23040
    assert cap.memory_mib.free == 23040 - 10_000
    assert (cap.vcpus.capacity, cap.vcpus.free) == (12, 7)
    assert (cap.disk_gib.total, cap.disk_gib.capacity, cap.disk_gib.free) == (100, 0, -30)


def test_fractional_capacity_is_floored() -> None:
    cap = host_capacity("h1", {"cpu_allocation_ratio": 1.3}, _facts(cpus=3))
    assert cap.vcpus.capacity == 3  # 3.9 vCPUs: 3 can be placed


def test_over_booked_shows_negative_free() -> None:
    cap = host_capacity("h1", {"ram_allocation_ratio": 0.5}, _facts(), Claimed(10_000))
    assert cap.memory_mib.free == int((16384 - 512) * 0.5) - 10_000 < 0


def test_no_facts_says_so_and_still_shows_claims() -> None:
    cap = host_capacity("h1", {}, None, Claimed(2048, 2, 0))
    assert cap.problem == NO_FACTS
    assert cap.memory_mib.total is None and cap.memory_mib.free is None
    assert cap.memory_mib.claimed == 2048 and cap.memory_mib.reserved == 512
    assert cap.as_dict()["vcpus"]["capacity"] is None


def test_facts_missing_a_group_name_it() -> None:
    facts = _facts(disks=[])
    facts["cpu"] = {"error": "permission denied"}
    cap = host_capacity("h1", {}, facts)
    assert cap.problem == "facts lack vcpus, disk_gib"
    assert cap.memory_mib.total == 16384 and cap.vcpus.total is None
    assert totals({"memory": {"total": 3 * 2**20 + 5}}) == {
        "memory_mib": 3, "vcpus": None, "disk_gib": None}


@pytest.mark.parametrize(("name", "value", "why"), [
    ("cpu_allocation_ratio", "lots", "is not a number"),
    ("reserved_memory_mib", -1, "is negative"),
])
def test_bad_vars_name_the_host_and_var(name: str, value: Any, why: str) -> None:
    with pytest.raises(InputError, match=f"host kvm7: {name} = .* {why}"):
        host_capacity("kvm7", {name: value}, _facts())
