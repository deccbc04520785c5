"""Placement: capacity, tags, dedicated hosts, and why hosts were excluded."""

from __future__ import annotations

from typing import Any

from control_server.placement import HostState, Instance, PlacementRequest, place

GIB = 2**30


def _facts(mem_gib: int = 8, cpus: int = 4, kvm: bool = True) -> dict[str, Any]:
    return {"memory": {"total": mem_gib * GIB}, "cpu": {"count": cpus},
            "kvm": {"present": True, "usable": kvm}}


def test_capacity_counts_instances_and_reserve() -> None:
    small = HostState("a", {}, _facts(2), [Instance("x", 1024, 1)])  # 2048-512-1024 = 512 left
    big = HostState("b", {}, _facts(8))
    decision = place([small, big], PlacementRequest(memory_mib=1024))
    assert decision.host == "b"
    assert decision.excluded == {"a": "memory: 512 MiB left < 1024 MiB asked"}


def test_vcpu_allocation_ratio() -> None:
    host = HostState("a", {"cpu_allocation_ratio": 2}, _facts(8, 2),
                     [Instance("x", 256, 3)])
    assert place([host], PlacementRequest(256, vcpus=1)).host == "a"
    assert "vcpus: 1 left < 2 asked" in place([host], PlacementRequest(256, vcpus=2)).excluded["a"]


def test_tags_from_inventory_and_facts() -> None:
    gpu = HostState("gpu1", {"capabilities": ["gpu", "nvme"]}, _facts(kvm=False))
    kvm = HostState("kvm1", {}, _facts())
    assert place([gpu, kvm], PlacementRequest(256, tags=("gpu",))).host == "gpu1"
    d = place([gpu, kvm], PlacementRequest(256, tags=("gpu", "kvm")))
    assert d.host is None
    assert d.excluded == {"gpu1": "lacks tags kvm", "kvm1": "lacks tags gpu"}
    assert "gpu1: lacks tags kvm" in d.reason


def test_dedicated_hosts_take_only_their_tenant() -> None:
    acme = HostState("acme1", {"dedicated_to": "acme"}, _facts(64))
    shared = HostState("shared1", {}, _facts(4))
    # The biggest host is acme's: another tenant never lands there.
    assert place([acme, shared], PlacementRequest(256, tenant="globex")).host == "shared1"
    assert place([acme, shared], PlacementRequest(256)).host == "shared1"
    # acme may use its own host or a shared one; dedicated requests only its own.
    assert place([acme, shared], PlacementRequest(256, tenant="acme")).host == "acme1"
    only = place([shared], PlacementRequest(256, tenant="acme", dedicated=True))
    assert only.host is None
    assert only.excluded == {"shared1": "not dedicated to tenant acme"}


def test_hosts_without_facts_or_unreachable_are_excluded() -> None:
    d = place([HostState("a", {}, None), HostState("b", {}, _facts(), reachable=False)],
              PlacementRequest(256))
    assert d.host is None
    assert d.excluded == {"a": "no facts yet (run host_facts)", "b": "unreachable"}


def test_spread_then_name() -> None:
    hosts = [HostState(n, {}, _facts(4)) for n in ("c", "a", "b")]
    decision = place(hosts, PlacementRequest(256))
    assert decision.host == "a"
    assert "among 3 candidate(s)" in decision.reason


def test_ram_ratio_and_nova_cpu_default_and_a_bad_var() -> None:
    # (8192 - 512) * 1.5 = 11520 MiB; 2 CPUs * 4.0 (Nova's default) = 8 vCPUs.
    over = HostState("a", {"ram_allocation_ratio": "1.5"}, _facts(8, 2))
    bad = HostState("b", {"ram_allocation_ratio": "lots"}, _facts(64, 64))
    d = place([over, bad], PlacementRequest(11520, vcpus=8))
    assert d.host == "a"
    assert d.excluded == {"b": "host b: ram_allocation_ratio = 'lots' is not a number"}
    assert place([over], PlacementRequest(11521)).excluded["a"].startswith("memory: 11520")
    assert place([over], PlacementRequest(256, vcpus=9)).excluded["a"].startswith("vcpus: 8")
