"""The typed functions the service uses for tokens, host events and instances, on SQLite
and a real PostgreSQL (the service tests cover them through the API, on SQLite)."""

from __future__ import annotations

import pytest

from control_server.store.hostevents import HostEventLog
from control_server.store.instances import InstanceRow, InstanceTable
from control_server.store.jobstore import JobStore
from control_server.store.tokens import NameInUse, TokenTable


def test_token_rows_replace_only_a_revoked_name(store: JobStore) -> None:
    table = TokenTable(store.engine)
    first = table.add("ci", "reader", "sha256$a$b")
    with pytest.raises(NameInUse):
        table.add("ci", "operator", "sha256$c$d")
    assert table.revoke("ci") and not table.revoke("ci")
    second = table.add("ci", "operator", "sha256$c$d")
    assert second != first and table.get(first) is None
    row = table.get(second)
    assert row is not None and (row.name, row.role, row.hash) == ("ci", "operator", "sha256$c$d")
    table.touch(second, 123.0)
    assert [(r.name, r.last_used_at, r.revoked_at) for r in table.all()] == [("ci", 123.0, None)]


def test_host_events_come_back_in_order_per_host(store: JobStore) -> None:
    log = HostEventLog(store.engine, "server-1")
    assert log.last_id() == 0
    ids = [log.append(host, "instance_state", {"n": n}, instance="vm1", when=float(n))
           for n, host in enumerate(("h1", "h2", "h1"))]
    assert log.last_id() == ids[-1]
    got = log.after(0, host="h1")
    assert [(e.id, e.payload, e.time, e.received_by) for e in got] == [
        (ids[0], {"n": 0}, 0.0, "server-1"), (ids[2], {"n": 2}, 2.0, "server-1")]
    assert [e.id for e in log.after(ids[0])] == ids[1:]


def test_instance_rows_are_replaced_per_host_and_name(store: JobStore) -> None:
    table = InstanceTable(store.engine)
    table.put(InstanceRow("h1", "vm1", "running", "u-1", 1.0, {"memory_mib": 512}))
    table.put(InstanceRow("h2", "vm1", "shutoff", None, 2.0))
    table.put(InstanceRow("h1", "vm1", "paused", "u-1", 3.0, {"memory_mib": 1024}))
    rows = sorted(table.all(), key=lambda r: r.host)
    assert [(r.host, r.state, r.updated_at, r.payload) for r in rows] == [
        ("h1", "paused", 3.0, {"memory_mib": 1024}), ("h2", "shutoff", 2.0, {})]
    table.remove("h1", "vm1")
    assert [r.host for r in table.all()] == ["h2"]
