"""What serve knows of the fleet: each host's last facts, reachability and last contact,
and every instance (libvirt domain) on every host.

It learns from results: every run serve makes (jobs and the periodic ``host_facts``) has a
``StateSink``. A ``facts`` step's data becomes the host's facts (a gather of some groups
updates those groups), and its ``libvirt.domains`` list, when there is one, is the host's
instance list; a ``libvirt_domain`` step's data (``name``, ``state``...) updates that one
instance (``absent`` removes it). Instances and facts are kept in the store (``instances``,
``host_facts``) so a restart, or another server on the same store, knows them; facts are
also gathered again at start-up.

Placement reads ``host_states()``: inventory vars, last facts, instances, and the
*reservations* of placed jobs still running, so two requests placed at the same moment
do not both count on the same free memory.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from control_server.events import (
    HOST_FAILED,
    HOST_OK,
    HOST_UNREACHABLE,
    ExecutorEvent,
    HostFinished,
    RunEvent,
    RunStarted,
)
from control_server.inventory import Inventory
from control_server.placement import HostState, Instance
from control_server.service import hostevents
from control_server.service.bus import HOST_EVENTS, Bus
from control_server.store.facts import HostFacts, HostFactsTable
from control_server.store.instances import Engine, InstanceRow, InstanceTable

log = logging.getLogger("hostplane.serve")
MIB = 2**20


@dataclass
class HostStatus:
    facts: dict[str, Any] | None = None
    facts_at: float | None = None
    reachable: bool | None = None  # None: never tried
    last_seen: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class InstanceRecord:
    host: str
    name: str
    state: str
    uuid: str | None = None
    memory_mib: int = 0
    vcpus: int = 0
    updated_at: float = 0.0
    job_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def instance_from_data(host: str, data: dict[str, Any], when: float,
                       job_id: int | None) -> InstanceRecord | None:
    """An instance from a domain as the executor describes it; None if it names none."""
    name, state = data.get("name"), data.get("state")
    if not isinstance(name, str) or not name or not isinstance(state, str):
        return None
    memory = data.get("memory_mib")
    if not isinstance(memory, int | float) and isinstance(data.get("memory"), int | float):
        memory = data["memory"] / MIB  # bytes
    vcpus = data.get("vcpus")
    keep: dict[str, Any] = {k: data[k] for k in ("type", "active", "persistent", "autostart", "id", "macs")
            if k in data}
    return InstanceRecord(host, name, state, data.get("uuid") if isinstance(
        data.get("uuid"), str) else None, int(memory or 0),
        int(vcpus) if isinstance(vcpus, int | float) else 0, when, job_id, keep)


class FleetState:
    def __init__(self, engine: Engine, inventory: Inventory, bus: Bus,
                 events: hostevents.HostEventLog) -> None:
        self.engine = engine
        self.table = InstanceTable(engine)
        self.facts_table = HostFactsTable(engine)
        self.inventory = inventory
        self.bus = bus
        self.events = events
        self.hosts: dict[str, HostStatus] = {}
        self.instances: dict[tuple[str, str], InstanceRecord] = {}
        self.reservations: dict[int, tuple[str, Instance]] = {}
        self._ids = itertools.count(1)
        # One writer thread: writes stay in order and never hold the event loop.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="serve-state")

    def load(self) -> None:
        self.load_facts()
        for r in self.table.all():
            extra = dict(r.payload)
            self.instances[(r.host, r.name)] = InstanceRecord(
                r.host, r.name, r.state, r.uuid, int(extra.pop("memory_mib", 0)),
                int(extra.pop("vcpus", 0)), r.updated_at, extra.pop("job_id", None), extra)

    def load_facts(self) -> None:
        """Take the store's facts, which any server may have written since (a gather this
        server made that is newer stays)."""
        self.take_facts(self.facts_table.all())

    def take_facts(self, rows: Iterable[HostFacts]) -> None:
        """``load_facts`` with the rows read already (serve reads them off its loop)."""
        for row in rows:
            status = self.status(row.host)
            if status.facts_at is None or row.gathered_at >= status.facts_at:
                status.facts, status.facts_at = row.facts, row.gathered_at

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def status(self, host: str) -> HostStatus:
        return self.hosts.setdefault(host, HostStatus())

    def sink(self, job_id: int | None = None) -> StateSink:
        return StateSink(self, job_id)

    # --- placement ----------------------------------------------------------------------

    def host_instances(self, host: str) -> list[Instance]:
        found = [Instance(i.name, i.memory_mib, i.vcpus)
                 for (h, _), i in self.instances.items() if h == host and i.state != "absent"]
        found += [inst for h, inst in self.reservations.values() if h == host]
        return found

    def host_states(self) -> list[HostState]:
        states = []
        for host in self.inventory.hosts("all"):
            status = self.status(host.name)
            states.append(HostState(host.name, host.vars, status.facts,
                                    tuple(self.host_instances(host.name)),
                                    reachable=status.reachable is not False))
        return states

    def reserve(self, host: str, instance: Instance) -> int:
        key = next(self._ids)
        self.reservations[key] = (host, instance)
        return key

    def release(self, key: int | None) -> None:
        if key is not None:
            self.reservations.pop(key, None)

    # --- learning from results ----------------------------------------------------------

    def seen(self, host: str, when: float) -> None:
        self._reachability(host, True, None, when)

    def unreachable(self, host: str, error: str | None, when: float) -> None:
        self._reachability(host, False, error, when)

    def _reachability(self, host: str, reachable: bool, error: str | None,
                      when: float) -> None:
        status = self.status(host)
        before = status.reachable
        status.reachable = reachable
        status.last_error = error
        if reachable:
            status.last_seen = when
        if before != reachable and (before is not None or not reachable):
            kind = hostevents.HOST_REACHABLE if reachable else hostevents.HOST_UNREACHABLE
            self._host_event(host, kind, {"reachable": reachable, "error": error}, None, when)

    def set_facts(self, host: str, data: dict[str, Any], when: float,
                  job_id: int | None) -> None:
        status = self.status(host)
        status.facts = {**(status.facts or {}), **data}
        status.facts_at = when
        self._writer.submit(self._save_facts, host, data, when, job_id)
        libvirt = data.get("libvirt")
        domains = libvirt.get("domains") if isinstance(libvirt, dict) else None
        if isinstance(domains, list):
            self._replace_instances(host, domains, when, job_id, "facts")

    def _replace_instances(self, host: str, domains: list[Any], when: float,
                           job_id: int | None, source: str) -> None:
        listed = set()
        for domain in domains:
            if isinstance(domain, dict):
                record = instance_from_data(host, domain, when, job_id)
                if record is not None:
                    listed.add(record.name)
                    self.update_instance(record, source)
        for key in [k for k in self.instances if k[0] == host and k[1] not in listed]:
            gone = self.instances[key]
            self.update_instance(InstanceRecord(host, gone.name, "absent", gone.uuid,
                                                updated_at=when, job_id=job_id), source)

    def apply_watch_event(self, host: str, event: dict[str, Any]) -> None:
        """One event of a host's ``executor --watch-domains`` stream (``hello``,
        ``heartbeat``, ``domain_list``, ``domain_event``): the entry point of the host
        event listener, which is not built yet."""
        kind = event.get("event")
        when = event.get("time")
        when = float(when) if isinstance(when, int | float) else time.time()
        if kind in ("hello", "heartbeat", "domain_list"):
            self.seen(host, when)
        domains = event.get("domains")
        if kind == "domain_list" and isinstance(domains, list):
            self._replace_instances(host, domains, when, None, "watch")
        elif kind == "domain_event" and isinstance(event.get("domain"), str):
            self._domain_event(host, event, when)

    def _domain_event(self, host: str, event: dict[str, Any], when: float) -> None:
        name, state = str(event["domain"]), str(event.get("state") or "nostate")
        before = self.instances.get((host, name))
        uuid = event.get("uuid") if isinstance(event.get("uuid"), str) else None
        record = InstanceRecord(
            host, name, state, uuid or (before.uuid if before else None),
            before.memory_mib if before else 0, before.vcpus if before else 0, when,
            before.job_id if before else None, before.data if before else {})
        self.update_instance(record, "watch", announce=False)
        # The domain's own event (domain_started, domain_crashed...) says more than an
        # instance_state would: it is the one recorded.
        payload = {"state": state, "previous": before.state if before else None,
                   "detail": event.get("detail"), "uuid": record.uuid, "source": "watch"}
        self._host_event(host, f"domain_{event.get('kind')}", payload, name, when)

    def update_instance(self, record: InstanceRecord, source: str = "job",
                        announce: bool = True) -> None:
        key = (record.host, record.name)
        before = self.instances.get(key)
        if record.state == "absent":
            self.instances.pop(key, None)
        else:
            self.instances[key] = record
        self._writer.submit(self._save_instance, record)
        if not announce or (before is None and record.state == "absent"):
            return
        if before is None or before.state != record.state:
            payload = {"state": record.state, "previous": before.state if before else None,
                       "uuid": record.uuid, "job_id": record.job_id, "source": source}
            self._host_event(record.host, hostevents.INSTANCE_STATE, payload, record.name,
                             record.updated_at)

    def _host_event(self, host: str, kind: str, payload: dict[str, Any],
                    instance: str | None, when: float) -> None:
        def write() -> None:
            self.events.append(host, kind, payload, instance, when)
            self.bus.notify_threadsafe(HOST_EVENTS)

        self._writer.submit(_logged(write))

    def _save_facts(self, host: str, data: dict[str, Any], when: float,
                    job_id: int | None) -> None:
        try:
            self.facts_table.merge(host, data, when, job_id)
        except Exception:  # gathered again at start-up and every facts interval
            log.exception("could not save the facts of %s", host)

    def _save_instance(self, record: InstanceRecord) -> None:
        try:
            if record.state == "absent":
                self.table.remove(record.host, record.name)
                return
            payload = {**record.data, "memory_mib": record.memory_mib,
                       "vcpus": record.vcpus, "job_id": record.job_id}
            self.table.put(InstanceRow(record.host, record.name, record.state, record.uuid,
                                       record.updated_at, payload))
        except Exception:  # state is rebuilt from results; a lost write is not fatal
            log.exception("could not save instance %s on %s", record.name, record.host)


def _logged(fn: Any) -> Any:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("could not record a host event")

    return run


class StateSink:
    """Feeds one run's results into the fleet state (in the event loop; cheap)."""

    def __init__(self, state: FleetState, job_id: int | None) -> None:
        self.state = state
        self.job_id = job_id
        self.check = False

    def emit(self, event: RunEvent) -> None:
        if isinstance(event, ExecutorEvent):
            self._executor(event)
        elif isinstance(event, HostFinished):
            if event.status == HOST_UNREACHABLE:
                self.state.unreachable(event.host, event.error, event.time)
            elif event.status in (HOST_OK, HOST_FAILED):
                self.state.seen(event.host, event.time)
        elif isinstance(event, RunStarted):
            self.check = event.check

    def _executor(self, event: ExecutorEvent) -> None:
        raw = event.event
        kind = raw.get("event")
        if kind == "hello":
            self.state.seen(event.host, event.time)
        if kind != "step_end" or raw.get("status") in ("failed", "skipped"):
            return
        data = raw.get("data")
        if not isinstance(data, dict):
            return
        if raw.get("action") == "facts":
            self.state.set_facts(event.host, data, event.time, self.job_id)
        elif raw.get("action") == "libvirt_domain" and not self.check:
            # In check mode nothing changed: the domain is as it was.
            record = instance_from_data(event.host, data, event.time, self.job_id)
            if record is not None:
                self.state.update_instance(record)
