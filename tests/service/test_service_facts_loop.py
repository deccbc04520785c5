"""serve's periodic facts round also takes the facts other servers of the store gathered
since: two fleet states on one store; after one server's round it knows what the other
stored of a host it cannot reach itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service_helpers import free_port

from control_server import api
from control_server.events import ExecutorEvent
from control_server.inventory import Inventory
from control_server.service.bus import Bus
from control_server.service.hostevents import HostEventLog
from control_server.service.jobs_runner import JobRunner
from control_server.service.state import FleetState
from control_server.store.jobstore import JobStore

GIB = 2**30


def _state(store: JobStore, inventory: Path) -> FleetState:
    state = FleetState(store.engine, Inventory.load([str(inventory)]), Bus(),
                       HostEventLog(store.engine, "test"))
    state.load()
    return state


async def _one_round(runner: JobRunner) -> None:
    runner.start_facts(None)  # None: one round, at start-up
    await asyncio.wait_for(runner.facts_ready.wait(), timeout=120)


def test_a_facts_round_takes_what_another_server_stored(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    # "far" refuses this server's connections; the other server reached it.
    inventory.write_text("here ansible_connection=local\n"
                         f"far ansible_host=127.0.0.1 ansible_port={free_port()} "
                         "ansible_connection=ssh\n")
    store = JobStore.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    mine, other = _state(store, inventory), _state(store, inventory)
    try:
        # The other server gathers "far" after this one started (and loaded the store).
        other.sink(job_id=7).emit(ExecutorEvent("far", {
            "event": "step_end", "index": 0, "name": "facts", "action": "facts",
            "status": "ok", "data": {"memory": {"total": 8 * GIB}, "cpu": {"count": 6}}}))
        other.close()  # its writer has stored them
        assert mine.status("far").facts is None

        asyncio.run(_one_round(JobRunner(store, mine.inventory, mine, mine.bus,
                                         api.RunConfig())))
        far = mine.status("far")
        assert far.reachable is False  # not from this server's own round
        assert (far.facts or {}).get("cpu") == {"count": 6}
        assert (far.facts or {})["memory"]["total"] == 8 * GIB
        here = mine.status("here")
        assert here.reachable is True and (here.facts or {}).get("memory")
    finally:
        mine.close()
        store.close()
