"""The shipped libvirt templates on real hypervisors: a 2-host lab of containers running
libvirtd + QEMU (TCG), a tiny guest (stock kernel + busybox initramfs) that prints
HOSTPLANE-GUEST-READY on its serial console.

Everything goes through the library API (or the CLI), as root on the hosts (``become``: the
serial logs and images are root's). Guests boot under TCG emulation: on a loaded machine
that takes minutes, hence the generous ``boot_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from control_server import api
from control_server.events import ExecutorEvent, RunEvent
from control_server.inventory import Inventory
from control_server.lab import Lab
from control_server.runner import RunOptions

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]

POOL = "hostplane"
NETWORK = "hpnet"
GUEST_DIR = "/var/lib/hostplane/guest"
BOOT_TIMEOUT = 600
MARKER = "HOSTPLANE-GUEST-READY"


@pytest.fixture(scope="module")
def lab(libvirt_lab: Lab) -> Lab:
    """The session's 2-host libvirt lab (tests/integration/conftest.py), shared with the
    README walkthrough: instance names here are unique, the walkthrough's vm1 and net1 are
    its own."""
    return libvirt_lab


def ssh(lab: Lab, host: str, command: str, timeout: float = 60) -> str:
    """Out of band, as root on the host (not through hostplane)."""
    proc = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", host,
                           "sudo sh -c " + json.dumps(command)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    return proc.stdout


def run(lab: Lab, pattern: str, template: str, evars: dict[str, Any] | None = None,
        **opts: Any) -> tuple[Any, list[RunEvent]]:
    return asyncio.run(arun(lab, pattern, template, evars, **opts))


async def arun(lab: Lab, pattern: str, template: str, evars: dict[str, Any] | None = None,
               **opts: Any) -> tuple[Any, list[RunEvent]]:
    events: list[RunEvent] = []

    class Sink:
        def emit(self, event: RunEvent) -> None:
            events.append(event)

    inv = Inventory.load([str(lab.inventory)])
    opts.setdefault("timeout", BOOT_TIMEOUT + 300)
    config = api.RunConfig(options=RunOptions(**opts), become=True)
    result = await api.run(inv, pattern, api.TemplateTask(template), evars or {}, config, [Sink()])
    return result, events


def ends(events: list[RunEvent], host: str, kind: str = "step_end") -> list[dict[str, Any]]:
    return [e.event for e in events if isinstance(e, ExecutorEvent) and e.host == host
            and e.event["event"] == kind]


def statuses(events: list[RunEvent], host: str) -> list[str]:
    return [e["status"] for e in ends(events, host)]


def assert_ok(result: Any) -> None:
    assert result.exit_code == 0, [(h.host, h.status, h.error, h.failed_steps)
                                   for h in result.hosts.values()]


@pytest.fixture(scope="module")
def guest(lab: Lab) -> dict[str, str]:
    """The launch params for the lab's guest (its initramfs name, the lab's network)."""
    files = ssh(lab, lab.hosts[0].name, f"ls {GUEST_DIR}").split()
    assert "vmlinuz" in files, files
    initrd = "initrd.img" if "initrd.img" in files else "initramfs.cpio.gz"
    kernel = "vmlinux" if "vmlinux" in files else "vmlinuz"  # uncompressed boots 2x faster
    return {"kernel": f"{GUEST_DIR}/{kernel}", "initrd": f"{GUEST_DIR}/{initrd}",
            "network": NETWORK, "boot_timeout": str(BOOT_TIMEOUT)}


@pytest.fixture(scope="module")
def prepared(lab: Lab) -> Lab:
    assert_ok(run(lab, "all", "host_prepare")[0])
    assert_ok(run(lab, "all", "create_network", {"name": NETWORK, "cidr": "10.213.250.0/24"})[0])
    return lab


def domain_state(lab: Lab, host: str, name: str) -> str:
    return ssh(lab, host, f"virsh -c qemu:///system domstate {name} 2>/dev/null || echo absent").strip()


def leftovers(lab: Lab, host: str, name: str) -> dict[str, str]:
    return {
        "domain": ssh(lab, host, f"virsh -c qemu:///system list --all --name | grep -x {name} || true").strip(),
        "volume": ssh(lab, host, f"virsh -c qemu:///system vol-list {POOL} | grep -w {name}.qcow2 || true").strip(),
        "log": ssh(lab, host, f"ls /var/log/libvirt/qemu/{name}.serial.log 2>/dev/null || true").strip(),
    }


def terminate(lab: Lab, name: str, pattern: str = "all") -> None:
    result, _ = run(lab, pattern, "terminate_instance", {"name": name})
    assert_ok(result)


def test_host_facts_report_each_host(prepared: Lab) -> None:
    proc = subprocess.run([sys.executable, "-m", "control_server", "run", "-i", str(prepared.inventory),
                           "all", "host_facts", "--become", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    facts = {ln["host"]: ln["event"]["data"] for ln in lines
             if ln["kind"] == "executor" and ln["event"]["event"] == "step_end"}
    assert sorted(facts) == sorted(h.name for h in prepared.hosts)
    for data in facts.values():
        lv = data["libvirt"]
        assert lv["available"] and lv["connected"], lv
        assert lv["versions"]["hypervisor"] == "QEMU" and lv["versions"]["qemu"].count(".") == 2
        assert lv["kvm"]["domain_type"] == "qemu" and lv["kvm"]["usable"] is False  # no /dev/kvm in the lab
        assert data["kvm"]["usable"] is False and data["kvm"]["reason"]
        assert any(p["name"] == POOL and p["active"] and p["available"] > 0 for p in lv["pools"])
        assert any(n["name"] == NETWORK and n["active"] for n in lv["networks"])
        assert lv["cpu"]["count"] >= 1 and lv["memory"]["free"] > 0


def test_launch_boots_on_every_host_and_is_idempotent(prepared: Lab, guest: dict[str, str]) -> None:
    name = f"it-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    result, events = run(prepared, "all", "launch_instance", {"name": name, **guest})
    took = time.monotonic() - started
    assert_ok(result)
    try:
        for host in prepared.hosts:
            assert statuses(events, host.name) == ["changed", "changed", "changed", "ok"]
            wait = ends(events, host.name)[-1]
            print(f"{host.name}: guest ready after {wait['data']['elapsed']:.1f} s (run {took:.1f} s)")
            assert domain_state(prepared, host.name, name) == "running"
            log = ssh(prepared, host.name, f"cat /var/log/libvirt/qemu/{name}.serial.log")
            assert re.search(f"(?m)^{MARKER}\r?$", log), log[-2000:]
        again, events = run(prepared, "all", "launch_instance", {"name": name, **guest})
        assert_ok(again)
        for host in prepared.hosts:
            assert statuses(events, host.name) == ["ok", "ok", "ok", "ok"]
    finally:
        terminate(prepared, name)


@pytest.fixture
def instance(prepared: Lab, guest: dict[str, str]) -> Iterator[tuple[str, str]]:
    """One running instance on the first host: (host, name)."""
    host, name = prepared.hosts[0].name, f"it-{uuid.uuid4().hex[:6]}"
    result, _ = run(prepared, host, "launch_instance", {"name": name, **guest})
    assert_ok(result)
    yield host, name
    terminate(prepared, name, host)


def test_stop_start_and_reboot(prepared: Lab, instance: tuple[str, str]) -> None:
    host, name = instance
    result, events = run(prepared, host, "stop_instance", {"name": name})
    assert_ok(result)
    assert statuses(events, host) == ["changed"]
    assert ends(events, host)[0]["msg"].startswith(f"domain {name}: shut down (ACPI")  # the guest obeys
    assert domain_state(prepared, host, name) == "shut off"
    result, events = run(prepared, host, "stop_instance", {"name": name})
    assert statuses(events, host) == ["ok"]
    evars = {"name": name, "wait_ready": True, "boot_timeout": BOOT_TIMEOUT}
    result, events = run(prepared, host, "start_instance", evars)
    assert_ok(result)
    assert statuses(events, host) == ["changed", "ok"]
    result, events = run(prepared, host, "reboot_instance", {"name": name})
    assert_ok(result)
    assert statuses(events, host) == ["changed"] and "rebooted" in ends(events, host)[0]["msg"]
    # The reboot emptied the log: the marker seen now is from the new boot.
    result, events = run(prepared, host, "start_instance", evars)
    assert_ok(result)
    assert statuses(events, host) == ["ok", "ok"]
    assert domain_state(prepared, host, name) == "running"


def test_terminate_leaves_nothing_behind(prepared: Lab, guest: dict[str, str]) -> None:
    host, name = prepared.hosts[1].name, f"it-{uuid.uuid4().hex[:6]}"
    assert_ok(run(prepared, host, "launch_instance", {"name": name, **guest})[0])
    assert all(leftovers(prepared, host, name).values())
    result, events = run(prepared, host, "terminate_instance", {"name": name})
    assert_ok(result)
    assert statuses(events, host)[0] == "changed"
    assert leftovers(prepared, host, name) == {"domain": "", "volume": "", "log": ""}
    result, events = run(prepared, host, "terminate_instance", {"name": name})
    assert_ok(result)
    assert statuses(events, host) == ["ok", "ok", "ok", "ok"]  # domain, volume, seed, log


def test_failed_launch_rolls_back_completely(prepared: Lab, guest: dict[str, str]) -> None:
    host, name = prepared.hosts[0].name, f"it-{uuid.uuid4().hex[:6]}"
    evars = {"name": name, **guest, "ready_marker": "NEVER-PRINTED", "boot_timeout": 3}
    result, events = run(prepared, host, "launch_instance", evars)
    assert result.exit_code == 2
    assert statuses(events, host) == ["changed", "changed", "changed", "failed"]
    undone = ends(events, host, "rollback_step_end")
    assert [(e["name"], e["status"]) for e in undone] == [
        (f"define domain {name}", "changed"), (f"create volume {name}.qcow2", "changed")]
    left = leftovers(prepared, host, name)
    assert (left["domain"], left["volume"]) == ("", ""), left
    terminate(prepared, name, host)  # the serial log


def test_failed_relaunch_keeps_the_existing_instance(prepared: Lab, instance: tuple[str, str],
                                                     guest: dict[str, str]) -> None:
    host, name = instance
    evars = {"name": name, **guest, "ready_marker": "NEVER-PRINTED", "boot_timeout": 3}
    result, events = run(prepared, host, "launch_instance", evars)
    assert result.exit_code == 2
    # Another ready marker changes the kernel command line: the domain is redefined in
    # place (changed, data.existed), which a rollback must never turn into an undefine.
    assert statuses(events, host) == ["ok", "changed", "ok", "failed"]
    assert ends(events, host)[1]["data"]["existed"] is True
    # Nothing was created, so nothing may be undone: the instance that was there stays.
    assert ends(events, host, "rollback_step_end") == []
    assert domain_state(prepared, host, name) == "running"


def test_concurrent_launches_of_one_name_serialize(prepared: Lab, guest: dict[str, str]) -> None:
    host, name = prepared.hosts[1].name, f"it-{uuid.uuid4().hex[:6]}"

    async def both() -> list[tuple[Any, list[RunEvent]]]:
        evars = {"name": name, **guest}
        return list(await asyncio.gather(arun(prepared, host, "launch_instance", evars),
                                         arun(prepared, host, "launch_instance", evars)))

    try:
        runs = asyncio.run(both())
        for result, _ in runs:
            assert_ok(result)
        got = sorted(tuple(statuses(events, host)) for _, events in runs)
        assert got == [("changed", "changed", "changed", "ok"), ("ok", "ok", "ok", "ok")]
        assert domain_state(prepared, host, name) == "running"
    finally:
        terminate(prepared, name, host)


def test_check_mode_reports_and_changes_nothing(prepared: Lab, guest: dict[str, str]) -> None:
    host, name = prepared.hosts[0].name, f"it-{uuid.uuid4().hex[:6]}"
    result, events = run(prepared, host, "launch_instance", {"name": name, **guest}, check=True)
    assert result.exit_code == 0
    got = ends(events, host)
    # The start and the wait can't be checked: the domain was only defined in check mode.
    assert [e["status"] for e in got] == ["changed", "changed", "skipped", "skipped"]
    assert got[0]["msg"].startswith(f"volume {POOL}/{name}.qcow2 (check mode) would be: created")
    assert got[1]["msg"] == f"domain {name} (check mode) would be: defined"
    assert leftovers(prepared, host, name) == {"domain": "", "volume": "", "log": ""}


def _guest_runs_dhcp(lab: Lab, host: str, initrd: str) -> bool:
    init = ssh(lab, host, f"zcat {initrd} | cpio -i --quiet --to-stdout init 2>/dev/null || true")
    return "udhcpc" in init


def test_network_with_dhcp_and_a_guest_on_it(prepared: Lab, guest: dict[str, str]) -> None:
    host, name, net = prepared.hosts[1].name, f"it-{uuid.uuid4().hex[:6]}", "hpdhcp"
    result, events = run(prepared, host, "create_network", {"name": net, "cidr": "10.213.251.0/24"})
    assert_ok(result)
    try:
        data = ends(events, host)[0]["data"]
        assert data["active"] and data["autostart"]
        assert data["ips"] == [{"address": "10.213.251.1", "netmask": "255.255.255.0",
                                "dhcp": [{"start": "10.213.251.2", "end": "10.213.251.254"}]}]
        assert "dnsmasq" in ssh(prepared, host, f"ps -eo args | grep '[d]nsmasq.*{net}' || true")
        result, events = run(prepared, host, "launch_instance", {"name": name, **guest, "network": net})
        assert_ok(result)
        mac = ends(events, host)[1]["data"]["macs"][0]
        assert net in ssh(prepared, host, f"virsh -c qemu:///system domiflist {name}")
        if not _guest_runs_dhcp(prepared, host, guest["initrd"]):
            pytest.skip("the lab guest runs no DHCP client: network, dnsmasq and NIC checked, no lease")
        deadline = time.monotonic() + 120
        leases = ""
        while time.monotonic() < deadline and mac not in leases:
            leases = ssh(prepared, host, f"virsh -c qemu:///system net-dhcp-leases {net}")
            time.sleep(2)
        assert mac in leases and "10.213.251." in leases
    finally:
        terminate(prepared, name, host)
        assert_ok(run(prepared, host, "delete_network", {"name": net})[0])


def test_events_show_a_domain_destroyed_out_of_band(prepared: Lab,
                                                    instance: tuple[str, str]) -> None:
    """The host event dispatcher: `hostplane events --follow` over SSH sees `virsh destroy`."""
    import queue
    import threading

    host, name = instance
    proc = subprocess.Popen([sys.executable, "-m", "control_server", "events", "-i",
                             str(prepared.inventory), host, "--follow", "--json"],
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()

    def next_event(kind: str, timeout: float, sub: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event["event"] == kind and sub in (None, event.get("kind")):
                return event
        raise AssertionError(f"no {kind} event within {timeout} s")

    try:
        snapshot = next_event("domain_list", 120)
        assert {d["name"]: d["state"] for d in snapshot["domains"]}[name] == "running"
        ssh(prepared, host, f"virsh -c qemu:///system destroy {name}")
        destroyed = time.monotonic()
        event = next_event("domain_event", 30, "stopped")  # libvirt may say "shutdown" first
        assert (event["domain"], event["kind"], event["detail"], event["state"]) == (
            name, "stopped", "destroyed", "shutoff")
        assert time.monotonic() - destroyed < 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)
