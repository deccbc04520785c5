"""``hostplane hosts`` against a real store (SQLite and PostgreSQL): facts and claims
written through the store's functions, ratios and reservations from host and group vars,
a host without facts said so, JSON Lines with --json."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from store_helpers import run_cli

from control_server.store import capacity
from control_server.store.capacity import Choice, Usage
from control_server.store.facts import HostFacts, HostFactsTable
from control_server.store.jobstore import JobStore

GIB = 2**30
INVENTORY = """\
[kvm]
kvm1 ram_allocation_ratio=1.5 reserved_memory_mib=1024
kvm2
kvm3

[kvm:vars]
cpu_allocation_ratio=2.0
"""


def _facts(memory_gib: int, cpus: int) -> dict[str, object]:
    return {"memory": {"total": memory_gib * GIB}, "cpu": {"count": cpus},
            "disks": [{"mount": "/", "size": 200 * GIB}]}


def _claim(store: JobStore, host: str, memory_mib: int, vcpus: int, disk_gib: int) -> None:
    def decide(_: Mapping[str, Usage]) -> Choice:
        return Choice(host, f"vm-{memory_mib}", memory_mib, vcpus, disk_gib)

    assert capacity.claim_capacity(store.engine, [host], decide) is not None


@pytest.fixture
def filled(db_url: str, tmp_path: Path) -> tuple[str, Path]:
    inv = tmp_path / "hosts.ini"
    inv.write_text(INVENTORY)
    with JobStore.open(db_url) as store:
        table = HostFactsTable(store.engine)
        table.put(HostFacts("kvm1", _facts(16, 8), 1_700_000_000.0, None))
        table.merge("kvm2", _facts(32, 16), 1_700_000_100.0)
        _claim(store, "kvm1", 4096, 4, 20)
        _claim(store, "kvm1", 2048, 2, 10)
        _claim(store, "kvm3", 1024, 1, 0)  # claimed before its facts were ever gathered
    return db_url, inv


def test_hosts_json_lines(capsys: pytest.CaptureFixture[str],
                          filled: tuple[str, Path]) -> None:
    db_url, inv = filled
    code, out, err = run_cli(capsys, "hosts", "-i", str(inv), "--db", db_url, "--json")
    assert code == 0, err
    rows = {row["host"]: row for row in map(json.loads, out.splitlines())}
    assert list(rows) == ["kvm1", "kvm2", "kvm3"]
    kvm1 = rows["kvm1"]
    assert kvm1["memory_mib"] == {"total": 16384, "ratio": 1.5, "reserved": 1024,
                                  "capacity": 23040, "claimed": 6144, "free": 16896}
    assert kvm1["vcpus"] == {"total": 8, "ratio": 2.0, "reserved": 0, "capacity": 16,
                             "claimed": 6, "free": 10}
    assert kvm1["disk_gib"]["free"] == 170 and kvm1["problem"] is None
    assert kvm1["facts_at"] == 1_700_000_000.0
    assert rows["kvm2"]["memory_mib"]["free"] == 32768 - 512
    assert rows["kvm2"]["vcpus"]["capacity"] == 32
    assert rows["kvm3"]["problem"] == "no facts yet (run host_facts)"
    assert rows["kvm3"]["memory_mib"]["claimed"] == 1024
    assert rows["kvm3"]["memory_mib"]["free"] is None


def test_hosts_table_and_pattern(capsys: pytest.CaptureFixture[str],
                                 filled: tuple[str, Path]) -> None:
    db_url, inv = filled
    code, out, err = run_cli(capsys, "hosts", "-i", str(inv), "--db", db_url, "kvm1:kvm3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["HOST", "RESOURCE", "TOTAL"]
    first = lines[1].split()
    assert first[:9] == ["kvm1", "memory", "MiB", "16384", "1.5", "1024", "23040", "6144",
                         "16896"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", first[9])  # facts_at, in local time
    assert lines[2].split() == ["vcpus", "8", "2", "0", "16", "6", "10"]
    assert lines[3].split() == ["disk", "GiB", "200", "1", "0", "200", "30", "170"]
    assert lines[4].split() == ["kvm3", "memory", "MiB", "-", "1", "512", "-", "1024", "-",
                                "-"]
    assert "no facts yet (run host_facts)" in out and "kvm2" not in out
    assert "Traceback" not in out + err


def test_a_bad_ratio_is_one_line_naming_host_and_var(capsys: pytest.CaptureFixture[str],
                                                     filled: tuple[str, Path]) -> None:
    db_url, inv = filled
    inv.write_text(INVENTORY.replace("cpu_allocation_ratio=2.0", "cpu_allocation_ratio=two"))
    code, out, err = run_cli(capsys, "hosts", "-i", str(inv), "--db", db_url)
    assert code == 1 and out == ""
    assert err.strip() == "error: host kvm1: cpu_allocation_ratio = 'two' is not a number"
