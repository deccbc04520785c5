"""GET /v1/hosts shows each host's capacity as ``hostplane hosts`` does: totals from the
facts, the ratio and reserved vars, capacity, what held claims in the store take (a claim
another server made counts at once), free."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from service_helpers import Fleet

from control_server.placement import HostState
from control_server.service.views import host_resources
from control_server.store import capacity
from control_server.store.capacity import Choice, Usage
from control_server.store.jobstore import JobStore


@pytest.fixture
def claim_on_h1(fleet: Fleet) -> Iterator[int]:
    """A claim of 300 MiB and 2 vCPUs on h1, written to serve's store from outside it."""
    store = JobStore.open(fleet.server.db)

    def decide(_held: object) -> Choice:
        return Choice("h1", "vm-elsewhere", memory_mib=300, vcpus=2, disk_gib=1)

    made = capacity.claim_capacity(store.engine, ["h1"], decide)
    assert made is not None
    try:
        yield made.id
    finally:
        capacity.release_capacity(store.engine, made.id)
        store.close()


def _hosts(fleet: Fleet) -> dict[str, Any]:
    with fleet.server.client(fleet.reader) as client:
        response = client.get("/v1/hosts")
    assert response.status_code == 200, response.text
    return {h["name"]: h for h in response.json()["hosts"]}


def test_hosts_show_totals_ratios_reserved_claims_and_free(fleet: Fleet,
                                                           claim_on_h1: int) -> None:
    assert claim_on_h1 > 0
    hosts = _hosts(fleet)
    h1 = hosts["h1"]
    res = h1["resources"]
    assert res["problem"] is None, (res, fleet.server.logs())
    total = h1["facts"]["memory"]["total"] // 2**20
    reserved = int(h1["vars"]["reserved_memory_mib"])
    assert res["memory_mib"] == {"total": total, "ratio": 1.0, "reserved": reserved,
                                 "capacity": total - reserved, "claimed": 300,
                                 "free": total - reserved - 300}
    cpus = h1["facts"]["cpu"]["count"]
    assert res["vcpus"] == {"total": cpus, "ratio": 4.0, "reserved": 0,
                            "capacity": cpus * 4, "claimed": 2, "free": cpus * 4 - 2}
    assert res["disk_gib"]["claimed"] == 1 and res["disk_gib"]["ratio"] == 1.0
    # Other hosts hold no claim; a host never contacted has no totals, and says why.
    assert hosts["h2"]["resources"]["memory_mib"]["claimed"] == 0
    assert hosts["h2"]["resources"]["memory_mib"]["free"] == 3000
    dead = hosts["dead"]["resources"]
    assert dead["problem"].startswith("no facts") and dead["memory_mib"]["total"] is None
    assert dead["memory_mib"]["free"] is None


def test_a_released_claim_no_longer_counts(fleet: Fleet) -> None:
    store = JobStore.open(fleet.server.db)
    try:
        assert capacity.usage(store.engine, ["h1"]) == {"h1": Usage()}
    finally:
        store.close()
    assert _hosts(fleet)["h1"]["resources"]["memory_mib"]["claimed"] == 0


def test_a_var_that_is_not_a_number_is_the_problem_not_a_500() -> None:
    placed = HostState("kvm9", {"ram_allocation_ratio": "lots"}, {"memory": {"total": 2**30}})
    shown = host_resources(placed, None, Usage())
    assert shown.memory_mib is None
    assert shown.problem == "host kvm9: ram_allocation_ratio = 'lots' is not a number"
