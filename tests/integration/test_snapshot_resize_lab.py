"""Snapshots and resize (issue 11 §5) on real libvirtd + QEMU (TCG) in the lab.

The domain is defined (not booted) by a small test template, so the disk's content is set
and read from the host with qemu-io while the domain is shut off: snapshot, overwrite,
revert, the first content is back. Then a resize of the shut-off domain keeps its UUID and
MAC, grows the disk and refuses to shrink it; last, a snapshot of the running domain saves
its memory state. The snapshot is taken through the CLI, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from test_libvirt_lab import (  # the lab's fixtures and helpers, shared
    NETWORK,
    POOL,
    assert_ok,
    ends,
    guest,
    lab,
    prepared,
    ssh,
    statuses,
)

from control_server import api
from control_server.events import RunEvent
from control_server.inventory import Inventory
from control_server.lab import Lab
from control_server.runner import RunOptions

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]
__all__ = ["guest", "lab", "prepared"]  # fixtures, imported for pytest to find

DEFINE = """{#
description: test only - a domain defined, not started, on a new qcow2 volume.
params:
  name: {required: true}
  kernel: {required: true}
  initrd: {required: true}
  network: {required: true}
  format: {default: qcow2}
#}
steps:
  - name: volume {{ name }}.qcow2
    libvirt_volume: {pool: POOL_NAME, name: '{{ name }}.qcow2', capacity: 1G, format: '{{ format }}'}
  - name: define {{ name }}
    libvirt_domain:
      name: {{ name }}
      state: defined
      xml: |
        <domain type='auto'>
          <name>{{ name }}</name>
          <memory unit='MiB'>128</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type><kernel>{{ kernel }}</kernel>
            <initrd>{{ initrd }}</initrd><cmdline>console=ttyS0</cmdline></os>
          <devices>
            <disk type='volume' device='disk'><driver name='qemu' type='{{ format }}'/>
              <source pool='POOL_NAME' volume='{{ name }}.qcow2'/><target dev='vda' bus='virtio'/></disk>
            <interface type='network'><source network='{{ network }}'/><model type='virtio'/></interface>
            <memballoon model='none'/>
          </devices>
        </domain>
""".replace("POOL_NAME", POOL)


def run(lab: Lab, templates: Path, host: str, template: str, evars: dict[str, Any]) -> tuple[Any, list[RunEvent]]:
    events: list[RunEvent] = []

    class Sink:
        def emit(self, event: RunEvent) -> None:
            events.append(event)

    inv = Inventory.load([str(lab.inventory)])
    config = api.RunConfig(options=RunOptions(timeout=600), become=True, templates_dirs=(templates,))
    result = asyncio.run(api.run(inv, host, api.TemplateTask(template), evars, config, [Sink()]))
    return result, events


def disk_has(lab: Lab, host: str, path: str, byte: int) -> bool:
    """Whether the first 64 KiB of the qcow2 image read as ``byte`` (qemu-io on the host)."""
    out = ssh(lab, host, f"qemu-io -r -f qcow2 -c 'read -P {byte:#x} 0 64k' {path} 2>&1")
    assert "read 65536/65536 bytes" in out or "Pattern verification failed" in out, out
    return "Pattern verification failed" not in out


def identity(lab: Lab, host: str, name: str) -> tuple[str, list[str], str, str]:
    root = ET.fromstring(ssh(lab, host, f"virsh -c qemu:///system dumpxml --inactive {name}"))
    macs = [m.get("address") or "" for m in root.findall("devices/interface/mac")]
    return root.findtext("uuid") or "", macs, root.findtext("memory") or "", root.findtext("vcpu") or ""


def test_snapshot_revert_and_resize_on_qemu(prepared: Lab, guest: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "lab_define_instance.yaml.j2").write_text(DEFINE)
    host, name = prepared.hosts[0].name, f"it-{uuid.uuid4().hex[:6]}"
    path = f"/var/lib/hostplane/images/{name}.qcow2"
    evars = {"name": name, "kernel": guest["kernel"], "initrd": guest["initrd"], "network": NETWORK}
    assert_ok(run(prepared, tmp_path, host, "lab_define_instance", evars)[0])
    try:
        ssh(prepared, host, f"qemu-io -f qcow2 -c 'write -P 0x41 0 64k' {path}")
        assert disk_has(prepared, host, path, 0x41)
        # The CLI, as an operator types it.
        cli = [sys.executable, "-m", "control_server", "run", "-i", str(prepared.inventory), host,
               "snapshot_instance", "-e", f"name={name}", "-e", "snapshot=s1", "--become", "--json"]
        msgs = []
        for expected in ("changed", "ok"):  # idempotent by name
            proc = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
            step = [ln["event"] for ln in lines if ln["kind"] == "executor"
                    and ln["event"]["event"] == "step_end"][-1]
            assert step["status"] == expected, step
            msgs.append(step["msg"])
        assert msgs == [f"snapshot s1 of domain {name}: taken, of the disks (the domain is shut off)",
                        f"snapshot s1 of domain {name} exists"]
        assert "s1" in ssh(prepared, host, f"qemu-img snapshot -l {path}")  # internal, in the qcow2

        ssh(prepared, host, f"qemu-io -f qcow2 -c 'write -P 0x42 0 64k' {path}")
        assert disk_has(prepared, host, path, 0x42)
        result, events = run(prepared, tmp_path, host, "revert_instance", {"name": name, "snapshot": "s1"})
        assert_ok(result)
        assert disk_has(prepared, host, path, 0x41)  # the first content is back

        before = identity(prepared, host, name)
        result, events = run(prepared, tmp_path, host, "resize_instance",
                             {"name": name, "memory_mib": 256, "vcpus": 2, "disk_gib": 2})
        assert result.exit_code == 0, ends(events, host)[0]["msg"]
        assert ends(events, host)[0]["msg"] == (
            f"domain {name}: disk vda 1 GiB -> 2 GiB, memory 128 -> 256 MiB, vcpus 1 -> 2")
        after = identity(prepared, host, name)
        assert after[:2] == before[:2] and len(after[1]) == 1  # same UUID, same MAC
        assert after[2:] == (str(256 * 1024), "2")
        info = json.loads(ssh(prepared, host, f"qemu-img info -U --output=json {path}"))
        assert info["virtual-size"] == 2 << 30
        result, events = run(prepared, tmp_path, host, "resize_instance", {"name": name, "disk_gib": 1})
        assert result.exit_code == 2 and statuses(events, host) == ["failed"]
        assert "shrinking it to 1 GiB is refused" in ends(events, host)[0]["msg"]

        # A running domain's snapshot holds its memory state (QEMU's savevm, on TCG).
        ssh(prepared, host, f"virsh -c qemu:///system start {name}")
        result, events = run(prepared, tmp_path, host, "snapshot_instance", {"name": name, "snapshot": "live"})
        assert_ok(result)
        assert ends(events, host)[0]["data"]["snapshot"]["memory"] is True
        # Running: the disk grows live (QEMU tells the guest); memory without a balloon waits.
        result, events = run(prepared, tmp_path, host, "resize_instance",
                             {"name": name, "memory_mib": 192, "disk_gib": 3})
        assert result.exit_code == 0, ends(events, host)[0]["msg"]
        resized = ends(events, host)[0]
        assert resized["msg"].startswith(f"domain {name}: disk vda 2 GiB -> 3 GiB live, memory 256 -> 192 MiB, "
                                         "memory 192 MiB at the next boot (the running domain refused it: ")
        assert resized["data"]["memory_mib"] == {"config": 192, "live": 256}
        assert identity(prepared, host, name)[:2] == before[:2]
        result, events = run(prepared, tmp_path, host, "list_snapshots", {"name": name})
        listed = ends(events, host)[0]["data"]["snapshots"]
        assert [(s["name"], s["state"]) for s in listed] == [("s1", "shutoff"), ("live", "running")]
        result, events = run(prepared, tmp_path, host, "delete_snapshot", {"name": name, "snapshot": "s1"})
        assert_ok(result)
        assert statuses(events, host) == ["changed"]

        # A raw disk has no internal snapshots: the step fails, saying so.
        raw = {**evars, "name": f"{name}-raw", "format": "raw"}
        assert_ok(run(prepared, tmp_path, host, "lab_define_instance", raw)[0])
        result, events = run(prepared, tmp_path, host, "snapshot_instance", {"name": raw["name"], "snapshot": "s1"})
        assert result.exit_code == 2 and statuses(events, host) == ["failed"]
        assert ends(events, host)[0]["msg"].startswith(
            f"snapshot s1 of domain {raw['name']} could not be taken of the disks (the domain is shut off): ")
        assert "internal snapshots need every disk in qcow2" in ends(events, host)[0]["msg"]
    finally:
        for domain in (name, f"{name}-raw"):
            ssh(prepared, host, f"virsh -c qemu:///system destroy {domain}; virsh -c qemu:///system "
                                f"undefine --snapshots-metadata --remove-all-storage {domain}")
