"""`hostplane serve` driving real hypervisors: a launch request over HTTP boots a VM, host
events from `virsh destroy` reach /v1/events and /v1/instances, and a host that went away
and came back is reconciled. A 2-host libvirt lab (libvirtd + QEMU TCG in containers)."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_server import api
from control_server.inventory import Inventory
from control_server.lab import Lab, lab_down, lab_up, start_host, stop_host
from control_server.runner import RunOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
import service_helpers as sh

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]

LAB = f"hostplane-lvs-{uuid.uuid4().hex[:6]}"  # hermetic: one lab per run
GUEST = "/var/lib/hostplane/guest"
BOOT_TIMEOUT = 600


def _ssh(lab: Lab, host: str, command: str) -> str:
    proc = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", host,
                           "sudo sh -c " + json.dumps(command)],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("ssh") is None:
        pytest.skip("needs an ssh client")
    folder = tmp_path_factory.mktemp("lvs")
    lab = lab_up(2, name=LAB, folder=folder, libvirt=True)
    inv = Inventory.load([str(lab.inventory)])
    config = api.RunConfig(options=RunOptions(timeout=900), become=True)
    for template, evars in (("host_prepare", {}),
                            ("create_network", {"name": "default", "cidr": "10.213.252.0/24"})):
        result = asyncio.run(api.run(inv, "all", api.TemplateTask(template), evars, config))
        assert result.exit_code == 0, [(h.host, h.error, h.failed_steps)
                                       for h in result.hosts.values()]
    yield lab
    lab_down(LAB, folder)


@pytest.fixture(scope="module")
def server(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sh.Server, str]]:
    work = tmp_path_factory.mktemp("serve")
    inventory = work / "hosts.ini"
    # Serial logs and images are root's: the executor runs through sudo (ansible_become).
    inventory.write_text(lab.inventory.read_text() + "\n[lab:vars]\nansible_become=true\n")
    db = f"sqlite:///{work}/db.sqlite"
    token = sh.create_token(db, "ops", "operator")
    server = sh.start_server(work, inventory, db, "--facts-interval", "0")
    yield server, token
    server.stop()


def _instances(client: httpx.Client, host: str) -> dict[str, str]:
    found = client.get("/v1/instances", params={"host": host}).json()["instances"]
    return {i["name"]: i["state"] for i in found}


def _until(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` is true (AssertionError when it never is)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def _host_events(server: sh.Server, token: str, host: str) -> queue.Queue[dict[str, Any]]:
    found: queue.Queue[dict[str, Any]] = queue.Queue()

    def pump() -> None:
        with server.client(token, timeout=None) as client, client.stream(
                "GET", "/v1/events", params={"host": host}) as response:
            for event in sh.sse_events(response.iter_lines()):
                found.put(event["data"])

    threading.Thread(target=pump, daemon=True).start()
    return found


def test_launch_over_http_then_out_of_band_events(lab: Lab, server: tuple[sh.Server, str]) -> None:
    srv, token = server
    host, name = lab.hosts[0].name, f"api-{uuid.uuid4().hex[:6]}"
    body = {"template": "launch_instance", "target": host,
            "vars": {"name": name, "kernel": f"{GUEST}/vmlinux",
                     "initrd": f"{GUEST}/initramfs.cpio.gz", "boot_timeout": BOOT_TIMEOUT}}
    with srv.client(token, timeout=BOOT_TIMEOUT + 120) as client:
        answer = client.post("/v1/requests", params={"wait": BOOT_TIMEOUT + 60}, json=body)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["state"] == "succeeded", json.dumps(job)[:3000]
        assert _instances(client, host).get(name) == "running"

        events = _host_events(srv, token, host)
        time.sleep(1.0)  # the stream is open before the domain is destroyed
        _ssh(lab, host, f"virsh -c qemu:///system destroy {name}")
        took = _until(lambda: _instances(client, host).get(name) == "shutoff", 30)
        assert took < 5, f"/v1/instances took {took:.1f}s"
        deadline = time.monotonic() + 30
        while True:
            event = events.get(timeout=max(0.1, deadline - time.monotonic()))
            if event["kind"] == "domain_stopped" and event["instance"] == name:
                break
        assert event["payload"]["detail"] == "destroyed"

        # The host goes away while its domain is started out of band, and comes back:
        # the domain list on reconnect puts /v1/instances right.
        _ssh(lab, host, f"virsh -c qemu:///system start {name}")
        _until(lambda: _instances(client, host).get(name) == "running", 30)
        stop_host(lab, host)  # qemu dies with the container; no event can tell
        start_host(lab, host)
        _until(lambda: _instances(client, host).get(name) == "shutoff", 120)
        done = client.post("/v1/requests", params={"wait": 300},
                           json={"template": "terminate_instance", "target": host,
                                 "vars": {"name": name}})
        assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
        _until(lambda: name not in _instances(client, host), 30)


def test_snapshot_and_resize_over_http(lab: Lab, server: tuple[sh.Server, str]) -> None:
    """The snapshot and resize templates as configuration requests (issue 11 §5), on a
    domain defined out of band (shut off: nothing to boot)."""
    srv, token = server
    host, name = lab.hosts[1].name, f"api-{uuid.uuid4().hex[:6]}"
    xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
           "<os><type arch='x86_64'>hvm</type></os><devices><disk type='volume' device='disk'>"
           f"<driver name='qemu' type='qcow2'/><source pool='hostplane' volume='{name}.qcow2'/>"
           "<target dev='vda' bus='virtio'/></disk><interface type='network'>"
           "<source network='default'/></interface></devices></domain>")
    virsh = "virsh -c qemu:///system"
    _ssh(lab, host, f"{virsh} vol-create-as hostplane {name}.qcow2 1G --format qcow2 && "
                    f"echo {json.dumps(xml)} > /tmp/{name}.xml && {virsh} define /tmp/{name}.xml")
    uuid_before = _ssh(lab, host, f"{virsh} domuuid {name}").strip()
    assert uuid_before, f"domain {name} was not defined"

    def request(client: httpx.Client, template: str, **vars: Any) -> dict[str, Any]:
        answer = client.post("/v1/requests", params={"wait": 120},
                             json={"template": template, "target": host, "vars": {"name": name, **vars}})
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["state"] == "succeeded", json.dumps(job)[:3000]
        step: dict[str, Any] = job["hosts"][0]["steps"][-1]
        return step

    try:
        with srv.client(token, timeout=180) as client:
            assert request(client, "snapshot_instance", snapshot="s1")["status"] == "changed"
            assert request(client, "snapshot_instance", snapshot="s1")["status"] == "ok"
            assert "1 snapshot(s): s1" in (request(client, "list_snapshots")["msg"] or "")
            resized = request(client, "resize_instance", memory_mib=256, vcpus=2)
            assert resized["msg"] == f"domain {name}: memory 128 -> 256 MiB, vcpus 1 -> 2"
            assert request(client, "revert_instance", snapshot="s1")["status"] == "changed"
            assert request(client, "delete_snapshot", snapshot="s1")["status"] == "changed"
        assert _ssh(lab, host, f"{virsh} domuuid {name}").strip() == uuid_before
    finally:
        _ssh(lab, host, f"{virsh} undefine --snapshots-metadata --remove-all-storage {name}; "
                        f"rm -f /tmp/{name}.xml")
