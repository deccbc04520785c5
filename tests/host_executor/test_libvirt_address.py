"""wait with ``address: true``: a domain's IPv4 address from its network's DHCP leases
(libvirt's test driver reports a lease for a running domain's NIC), none while it is off;
and the run recap's addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_harness import Executor
from libvirt_harness import SYSTEM_PYTHON, by_name, domain_xml, lv_step, needs_libvirt, run

from control_server.console import instance_address


@pytest.fixture
def lv(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache", python=SYSTEM_PYTHON)


@needs_libvirt
def test_wait_for_an_address(lv: Executor) -> None:
    steps = [lv_step("define", "libvirt_domain", name="vm1", xml=domain_xml()),
             {**lv_step("off: no lease", "wait", domain="vm1", address=True, timeout=0.3, interval=0.1),
              "ignore_errors": True},
             lv_step("start", "libvirt_domain", name="vm1", state="running"),
             lv_step("address", "wait", domain="vm1", address=True, timeout=5)]
    ends = by_name(run(lv, steps))
    off = ends["off: no lease"]
    assert off["status"] == "failed" and off["data"]["ip"] is None
    assert "an IPv4 address of domain vm1" in off["msg"]
    got = ends["address"]
    assert got["status"] == "ok", got
    ip = got["data"]["ip"]
    assert ip and ip.count(".") == 3 and f"address {ip} after" in got["msg"]
    assert got["data"]["domain"] == "vm1"
    assert any(a["addr"] == ip and a["type"] == "ipv4" for a in got["data"]["addresses"])
    assert instance_address(got) == ("vm1", ip, "DHCP lease")


def test_address_needs_a_domain(lv: Executor) -> None:
    out = lv.run({"protocol": 1, "id": "r", "steps": [
        {"name": "w", "action": "wait", "args": {"serial_log": "/x", "address": True}}]})
    assert out.rc == 2 and "args.address" in str(out.events)


def test_a_static_seed_address_is_in_the_recap() -> None:
    end = {"event": "step_end", "action": "cloud_init_seed", "status": "ok",
           "data": {"name": "vm1", "address": "10.0.0.5"}}
    assert instance_address(end) == ("vm1", "10.0.0.5", "static (network_config)")
    assert instance_address(dict(end, status="failed")) is None
