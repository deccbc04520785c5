"""Placement through the API: capacity (facts minus reserved memory and what is already
placed), capability tags, dedicated hosts; the decision is recorded with the job, and a
request nothing fits is a 409 naming what excluded each host.

The hosts are all this machine (local connections) with its real facts; their capacity
differs through ``reserved_memory_mib``: h1 has 1024 MiB left, h2 3000 (and tags gpu,
nvme), h3 is dedicated to tenant acme, dead is unreachable."""

from __future__ import annotations

from typing import Any

import httpx
from service_helpers import Fleet, wait_for_job


def _place(client: httpx.Client, wait: float = 30, seconds: int = 0, **spec: Any
           ) -> httpx.Response:
    body = {"template": "instance_like", "target": {"placement": spec},
            "vars": {"name": "vm1", "seconds": seconds}}
    return client.post("/v1/requests", json=body, params={"wait": wait})


def test_hosts_show_capacity_tags_and_reachability(fleet: Fleet) -> None:
    with fleet.server.client(fleet.reader) as client:
        hosts = {h["name"]: h for h in client.get("/v1/hosts").json()["hosts"]}
    assert set(hosts) == {"h1", "h2", "h3", "dead"}
    assert hosts["h1"]["capacity"], (hosts["h1"], fleet.server.logs())
    assert hosts["h1"]["capacity"]["memory_left_mib"] == 1024
    assert hosts["h2"]["capacity"]["memory_left_mib"] == 3000
    assert {"gpu", "nvme"} <= set(hosts["h2"]["tags"])
    assert hosts["h3"]["dedicated_to"] == "acme"
    assert hosts["h1"]["reachable"] is True and hosts["h1"]["facts"]["memory"]["total"] > 0
    assert hosts["dead"]["reachable"] is False and hosts["dead"]["capacity"] is None
    assert "reserved_memory_mib" in hosts["h1"]["vars"]


def test_capacity_decides_and_the_decision_is_recorded(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        response = _place(client, memory_mib=2000, vcpus=1)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["pattern"] == "h2" and [h["host"] for h in job["hosts"]] == ["h2"]
    placement = job["placement"]
    assert placement["host"] == "h2" and "h2" in placement["reason"]
    assert "memory" in placement["excluded"]["h1"]
    assert "dedicated to tenant acme" in placement["excluded"]["h3"]
    assert placement["excluded"]["dead"] == "unreachable"
    # What placement reserved is what the template got.
    assert job["hosts"][0]["steps"][0]["stdout"] == "vm1 2000 1\n"


def test_no_host_fits_is_409_with_what_excluded_each(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        response = _place(client, memory_mib=4000)
    assert response.status_code == 409
    excluded = response.json()["excluded"]
    assert set(excluded) == {"h1", "h2", "h3", "dead"}
    assert excluded["h1"].startswith("memory: 1024 MiB left")
    assert excluded["h2"].startswith("memory: 3000 MiB left")


def test_tags_pick_the_host_that_has_them(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        gpu = _place(client, memory_mib=100, tags=["gpu"])
        missing = _place(client, memory_mib=100, tags=["gpu", "fpga"])
    assert gpu.status_code == 200 and gpu.json()["pattern"] == "h2"
    assert gpu.json()["placement"]["excluded"]["h1"] == "lacks tags gpu"
    assert missing.status_code == 409
    assert "fpga" in missing.json()["excluded"]["h2"]


def test_dedicated_hosts_take_only_their_tenant(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        dedicated = _place(client, memory_mib=2000, tenant="acme", dedicated=True)
        other = _place(client, memory_mib=3500, tenant="globex")
        own = _place(client, memory_mib=3500, tenant="acme")
    assert dedicated.status_code == 200 and dedicated.json()["pattern"] == "h3"
    assert "not dedicated" in dedicated.json()["placement"]["excluded"]["h2"]
    assert other.status_code == 409  # only h3 is big enough, and it is acme's
    assert own.status_code == 200 and own.json()["pattern"] == "h3"


def test_a_placed_job_holds_its_capacity_while_it_runs(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        first = _place(client, wait=0, seconds=3, memory_mib=2000)
        assert first.status_code == 202
        second = _place(client, wait=0, memory_mib=2000)
        assert second.status_code == 409, second.text  # h2 has 1000 MiB left meanwhile
        assert "1000 MiB left" in second.json()["excluded"]["h2"]
        wait_for_job(client, first.json()["job_id"], ("succeeded", "failed"))
        third = _place(client, memory_mib=2000)
    assert third.status_code == 200 and third.json()["pattern"] == "h2"


def test_placement_input_is_checked(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        for spec in ({"memory_mib": 0}, {"memory_mib": 10, "vcpus": 0},
                     {"memory_mib": 10, "colour": "red"}, {"memory_mib": "lots"}):
            response = _place(client, **spec)
            assert response.status_code == 422, spec
