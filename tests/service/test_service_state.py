"""The fleet state serve keeps from results (in-process): facts, reachability, instances
(and their persistence), reservations, and the host events it records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control_server.events import (
    ExecutorEvent,
    HostFinished,
    RunStarted,
    StepCounts,
)
from control_server.inventory import Inventory
from control_server.placement import Instance, PlacementRequest, capacity, place
from control_server.service.bus import Bus
from control_server.service.hostevents import HostEventLog
from control_server.service.state import FleetState
from control_server.store.facts import HostFactsTable
from control_server.store.jobstore import JobStore

GIB = 2**30


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    opened = JobStore.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield opened
    opened.close()


def _state(store: JobStore, tmp_path: Path) -> FleetState:
    inv = tmp_path / "hosts.ini"
    inv.write_text("h1 reserved_memory_mib=0\nh2 reserved_memory_mib=0\n")
    state = FleetState(store.engine, Inventory.load([str(inv)]), Bus(),
                       HostEventLog(store.engine, "test"))
    state.load()
    return state


def _step(host: str, action: str, data: dict[str, Any], status: str = "changed"
          ) -> ExecutorEvent:
    return ExecutorEvent(host, {"event": "step_end", "index": 0, "name": "x", "action": action,
                                "status": status, "data": data})


def _facts(memory_gib: int = 8, cpus: int = 4, **extra: Any) -> dict[str, Any]:
    return {"memory": {"total": memory_gib * GIB}, "cpu": {"count": cpus}, **extra}


def _domain(name: str, state: str = "running", memory_mib: int = 1024, vcpus: int = 2
            ) -> dict[str, Any]:
    return {"name": name, "state": state, "uuid": f"uuid-{name}", "vcpus": vcpus,
            "memory": memory_mib * 2**20, "active": state == "running"}


def test_domain_results_make_instances_that_placement_counts(store: JobStore,
                                                            tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    sink = state.sink(job_id=7)
    sink.emit(_step("h1", "facts", _facts()))
    sink.emit(_step("h2", "facts", _facts()))
    sink.emit(_step("h1", "libvirt_domain", _domain("vm1", memory_mib=3072)))
    vm1 = state.instances[("h1", "vm1")]
    assert (vm1.memory_mib, vm1.vcpus, vm1.job_id, vm1.state) == (3072, 2, 7, "running")
    states = {s.name: s for s in state.host_states()}
    # 4 CPUs at Nova's default cpu_allocation_ratio 4.0, less vm1's 2 vCPUs
    assert capacity(states["h1"]) == (8192 - 3072, 4 * 4 - 2)
    decision = place(state.host_states(), PlacementRequest(memory_mib=6000))
    assert decision.host == "h2" and "memory" in decision.excluded["h1"]
    state.close()
    events = state.events.after(0)
    assert [(e.kind, e.instance, e.payload["state"]) for e in events] == [
        ("instance_state", "vm1", "running")]


def test_check_mode_and_failed_steps_change_no_instance(store: JobStore,
                                                       tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    checking = state.sink()
    checking.emit(RunStarted("r", "launch", ("h1",), check=True))
    checking.emit(_step("h1", "libvirt_domain", _domain("vm1")))
    state.sink().emit(_step("h1", "libvirt_domain", _domain("vm2"), status="failed"))
    assert state.instances == {}
    state.close()


def test_instances_persist_and_absent_removes_them(store: JobStore, tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    sink = state.sink()
    sink.emit(_step("h1", "libvirt_domain", _domain("vm1")))
    sink.emit(_step("h1", "libvirt_domain", _domain("vm2", state="shutoff")))
    sink.emit(_step("h1", "libvirt_domain", _domain("vm1", state="absent")))
    state.close()
    again = _state(store, tmp_path)
    assert list(again.instances) == [("h1", "vm2")]
    assert again.instances[("h1", "vm2")].state == "shutoff"
    kinds = [(e.instance, e.payload["state"], e.payload["previous"])
             for e in again.events.after(0)]
    assert kinds == [("vm1", "running", None), ("vm2", "shutoff", None),
                     ("vm1", "absent", "running")]
    again.close()


def test_a_facts_domain_list_is_the_hosts_instance_list(store: JobStore,
                                                       tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    sink = state.sink()
    sink.emit(_step("h1", "libvirt_domain", _domain("old")))
    sink.emit(_step("h1", "facts", _facts(libvirt={"domains": [_domain("new", "paused")]})))
    assert list(state.instances) == [("h1", "new")]
    assert state.instances[("h1", "new")].state == "paused"
    # A gather of one group updates that group and keeps the others.
    sink.emit(_step("h1", "facts", {"cpu": {"count": 16}}))
    facts = state.status("h1").facts or {}
    assert facts["cpu"]["count"] == 16 and facts["memory"]["total"] == 8 * GIB
    state.close()


def test_facts_persist_for_a_restart_or_another_server(store: JobStore,
                                                      tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    other = _state(store, tmp_path)  # another server on the store, running meanwhile
    sink = state.sink(job_id=4)
    sink.emit(_step("h1", "facts", _facts(memory_gib=8)))
    sink.emit(_step("h1", "facts", {"cpu": {"count": 16}}))
    state.close()  # the writer has written everything
    assert other.status("h1").facts is None
    other.load_facts()
    restarted = _state(store, tmp_path)
    for seen in (other, restarted):
        facts = seen.status("h1").facts or {}
        assert facts["cpu"]["count"] == 16 and facts["memory"]["total"] == 8 * GIB
        assert seen.status("h1").facts_at is not None and seen.status("h2").facts is None
    hosts = {s.name: s for s in restarted.host_states()}
    assert capacity(hosts["h1"]) == (8192, 16 * 4)  # placement counts the stored facts
    stored = HostFactsTable(store.engine).get("h1")
    assert stored is not None and stored.job_id == 4
    other.close()
    restarted.close()


def test_reachability_and_its_host_events(store: JobStore, tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    sink = state.sink()
    sink.emit(HostFinished("h1", "unreachable", StepCounts(), 0.1, error="refused"))
    assert state.status("h1").reachable is False
    assert "unreachable" in place(state.host_states(), PlacementRequest(1)).excluded["h1"]
    sink.emit(ExecutorEvent("h1", {"event": "hello"}))
    sink.emit(HostFinished("h1", "ok", StepCounts(), 0.1))
    status = state.status("h1")
    assert status.reachable is True and status.last_seen is not None
    sink.emit(HostFinished("h2", "ok", StepCounts(), 0.1))  # first contact: no event
    state.close()
    assert [(e.host, e.kind) for e in state.events.after(0)] == [
        ("h1", "host_unreachable"), ("h1", "host_reachable")]
    assert [e.kind for e in state.events.after(0, host="h2")] == []


def test_reservations_hold_capacity_until_released(store: JobStore, tmp_path: Path) -> None:
    state = _state(store, tmp_path)
    for host in ("h1", "h2"):
        state.sink().emit(_step(host, "facts", _facts(memory_gib=4)))
    key = state.reserve("h1", Instance("(placing)", 3000, 1))
    assert place(state.host_states(), PlacementRequest(2000)).host == "h2"
    key2 = state.reserve("h2", Instance("(placing)", 3000, 1))
    assert place(state.host_states(), PlacementRequest(2000)).host is None
    state.release(key)
    state.release(key2)
    state.release(None)
    assert place(state.host_states(), PlacementRequest(2000)).host == "h1"
    state.close()


def test_watch_events_keep_instances_current(store: JobStore, tmp_path: Path) -> None:
    """The entry point the host event listener will call with ``--watch-domains`` events."""
    state = _state(store, tmp_path)
    state.apply_watch_event("h1", {"event": "hello"})
    state.apply_watch_event("h1", {"event": "domain_list", "time": 10.0, "domains": [
        {"name": "vm1", "uuid": "u1", "state": "running", "vcpus": 2, "memory_mib": 512},
        {"name": "vm2", "uuid": "u2", "state": "shutoff", "vcpus": 1, "memory_mib": 256}]})
    assert state.instances[("h1", "vm1")].memory_mib == 512
    state.apply_watch_event("h1", {"event": "domain_event", "domain": "vm1", "uuid": "u1",
                                   "kind": "crashed", "detail": "panicked",
                                   "state": "crashed", "time": 11.0})
    vm1 = state.instances[("h1", "vm1")]
    assert (vm1.state, vm1.memory_mib, vm1.vcpus) == ("crashed", 512, 2)  # sizes kept
    state.apply_watch_event("h1", {"event": "domain_event", "domain": "vm2", "kind":
                                   "undefined", "detail": "removed", "state": "absent"})
    assert list(state.instances) == [("h1", "vm1")]
    state.apply_watch_event("h1", {"event": "heartbeat", "time": 12.0})
    assert state.status("h1").last_seen == 12.0
    state.close()
    events = [(e.kind, e.instance, e.payload.get("detail")) for e in state.events.after(0)]
    assert events == [("instance_state", "vm1", None), ("instance_state", "vm2", None),
                      ("domain_crashed", "vm1", "panicked"),
                      ("domain_undefined", "vm2", "removed")]
