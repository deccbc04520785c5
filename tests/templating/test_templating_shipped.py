"""Every shipped template renders for a sample host, validates, and matches its golden file.

Golden files (``golden/NAME.json``) hold the rendered wire steps with the lock and failure
policy. After a deliberate template change, regenerate them and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/templating/test_templating_shipped.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from templating_helpers import HOST, HOST_VARS

from control_server.errors import ParamError, TemplateError
from control_server.sequence import build_request
from control_server.templating import TemplateLibrary
from host_executor import protocol

GOLDEN = Path(__file__).parent / "golden"

SAMPLES: dict[str, dict[str, Any]] = {
    "host_facts": {},
    "host_prepare": {},
    "launch_instance": {"name": "vm1"},
    "start_instance": {"name": "vm1"},
    "stop_instance": {"name": "vm1"},
    "reboot_instance": {"name": "vm1"},
    "terminate_instance": {"name": "vm1"},
    "create_network": {"name": "net1"},
    "delete_network": {"name": "net1"},
    "create_volume": {"name": "data1.qcow2"},
    "delete_volume": {"name": "data1.qcow2"},
    "snapshot_instance": {"name": "vm1", "snapshot": "s1", "description": "before upgrade"},
    "list_snapshots": {"name": "vm1"},
    "revert_instance": {"name": "vm1", "snapshot": "s1"},
    "delete_snapshot": {"name": "vm1", "snapshot": "s1"},
    "resize_instance": {"name": "vm1", "memory_mib": "512", "vcpus": "2", "disk_gib": "4"},
}


def test_every_shipped_template_is_sampled(shipped: TemplateLibrary) -> None:
    assert sorted(info.name for info in shipped.list()) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_shipped_template_matches_golden(shipped: TemplateLibrary, name: str) -> None:
    seq = shipped.render(name, {**HOST_VARS, **SAMPLES[name]}, HOST)
    request = build_request(seq, f"req-{name}")
    assert protocol.validate_request(json.loads(json.dumps(request))) == request
    got = {"lock": seq.lock, "on_failure": seq.on_failure, "steps": seq.steps}
    path = GOLDEN / f"{name}.json"
    text = json.dumps(got, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == got


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_shipped_template_is_documented(shipped: TemplateLibrary, name: str) -> None:
    info = shipped.get(name)
    assert info.description
    assert all(p.description for p in info.params), [p.name for p in info.params if not p.description]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_libvirt_uri_host_var_reaches_every_libvirt_step(shipped: TemplateLibrary, name: str) -> None:
    seq = shipped.render(name, {**SAMPLES[name], "libvirt_uri": "qemu:///session"}, HOST)
    for step in seq.steps:
        if step["action"].startswith("libvirt_"):
            assert step["args"]["uri"] == "qemu:///session"
            if step["undo"]:
                assert step["undo"]["args"]["uri"] == "qemu:///session"


def test_launch_instance_variants(shipped: TemplateLibrary) -> None:
    seq = shipped.render(
        "launch_instance",
        {
            "name": "web-2",
            "base_image": "/var/lib/hostplane/images/debian.qcow2",
            "kernel": "",
            "network": "",
            "memory_mib": "512",
            "vcpus": 2,
            "disk_gib": "4",
            "domain_type": "qemu",
        },
        HOST,
    )
    volume, define, start, wait = seq.steps
    assert volume["args"]["backing"] == "/var/lib/hostplane/images/debian.qcow2"
    assert volume["args"]["capacity"] == 4 * 1024**3
    assert volume["undo"] == {
        "action": "libvirt_volume",
        "args": {"pool": "hostplane", "name": "web-2.qcow2", "state": "absent"},
    }
    xml = define["args"]["xml"]
    assert "<domain type='qemu'>" in xml
    assert "<memory unit='MiB'>512</memory>" in xml and "<vcpu placement='static'>2</vcpu>" in xml
    assert "<boot dev='hd'/>" in xml and "<kernel>" not in xml
    assert "<interface" not in xml and "<graphics" not in xml
    assert define["undo"]["args"]["state"] == "absent"
    assert start["args"]["state"] == "running"
    assert wait["args"]["serial_log"] == "/var/log/libvirt/qemu/web-2.serial.log"
    assert seq.lock == {"name": "instance-web-2", "timeout": 420}  # boot_timeout 120 + 300
    assert seq.on_failure == "rollback"


def test_launch_instance_from_a_pushed_image(shipped: TemplateLibrary) -> None:
    seq = shipped.render("launch_instance", {"name": "vm3", "image": "debian-12",
                                             "disk_gib": 8}, HOST)
    check, volume = seq.steps[:2]
    # Checked first: nothing is created on a host that lacks the image.
    assert check["action"] == "image" and check["undo"] is None
    assert check["args"] == {"name": "debian-12", "dir": "/var/lib/hostplane/base",
                             "state": "present"}
    assert volume["args"]["backing"] == "/var/lib/hostplane/base/names/debian-12"
    assert "backing_format" not in volume["args"]  # the host's copy's own, from its header
    assert volume["args"]["capacity"] == 8 * 1024**3 and volume["args"]["format"] == "qcow2"
    with pytest.raises(ParamError, match="image"):
        shipped.render("launch_instance", {"name": "vm3", "image": "../etc"}, HOST)


def test_launch_instance_direct_boot_xml(shipped: TemplateLibrary) -> None:
    seq = shipped.render("launch_instance", {"name": "vm1", "cmdline": "quiet"}, HOST)
    xml = seq.steps[1]["args"]["xml"]
    assert "<kernel>/var/lib/hostplane/guest/vmlinux</kernel>" in xml
    assert "<initrd>/var/lib/hostplane/guest/initramfs.cpio.gz</initrd>" in xml
    assert "<cmdline>console=ttyS0 hostplane.ready=HOSTPLANE-GUEST-READY quiet</cmdline>" in xml
    assert "<acpi/>" in xml
    assert "<serial type='pty'>" in xml and "<model type='virtio'/>" in xml
    # a pty for `hostplane console`, logged to the file `wait` reads
    assert "<log file='/var/log/libvirt/qemu/vm1.serial.log' append='off'/>" in xml


def test_create_network_addresses(shipped: TemplateLibrary) -> None:
    seq = shipped.render(
        "create_network",
        {"name": "lab", "cidr": "10.20.0.0/16", "bridge": "br-lab", "forward": "isolated"},
        HOST,
    )
    xml = seq.steps[0]["args"]["xml"]
    assert "<ip address='10.20.0.1' netmask='255.255.0.0'>" in xml
    assert "<range start='10.20.0.2' end='10.20.255.254'/>" in xml
    assert "<bridge name='br-lab' stp='on' delay='0'/>" in xml
    assert "<forward" not in xml
    assert seq.steps[0]["undo"]["args"] == {"name": "lab", "state": "absent"}


def test_optional_steps(shipped: TemplateLibrary) -> None:
    kept = shipped.render("terminate_instance", {"name": "vm1", "keep_serial_log": "yes"}, HOST)
    assert [s["action"] for s in kept.steps] == ["libvirt_domain", "libvirt_volume", "cloud_init_seed"]
    waited = shipped.render("start_instance", {"name": "vm1", "wait_ready": True}, HOST)
    assert [s["action"] for s in waited.steps] == ["libvirt_domain", "wait"]
    strict = shipped.render("host_prepare", {"require_kvm": "true"}, HOST)
    assert ["test", "-c", "/dev/kvm"] in [s["args"].get("argv") for s in strict.steps]
    facts = shipped.render("host_facts", {"gather": "cpu,memory"}, HOST)
    assert facts.steps[0]["args"] == {"gather": ["cpu", "memory"]}


def test_resize_instance_needs_a_size_and_sends_only_what_is_given(shipped: TemplateLibrary) -> None:
    with pytest.raises(TemplateError, match="resize_instance: give memory_mib, vcpus or disk_gib"):
        shipped.render("resize_instance", {"name": "vm1"}, HOST)
    seq = shipped.render("resize_instance", {"name": "vm1", "vcpus": "3", "disk": "vdb"}, HOST)
    assert seq.steps[0]["args"] == {"name": "vm1", "vcpus": 3}  # no disk without disk_gib
    seq = shipped.render("revert_instance", {"name": "vm1", "snapshot": "s1", "force": "true"}, HOST)
    assert seq.steps[0]["args"]["force"] is True
    with pytest.raises(ParamError, match="snapshot"):
        shipped.render("snapshot_instance", {"name": "vm1", "snapshot": "../s1"}, HOST)
