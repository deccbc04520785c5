"""Base images on real hypervisors (the 2-host libvirt lab): a small qcow2 pushed to one
host, an instance launched on it as a qcow2 overlay (real QEMU under TCG), the other host
refusing the launch before creating anything, the base kept by terminate and guarded by
``image remove``."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from test_libvirt_lab import (  # the lab's fixtures and helpers, shared
    assert_ok,
    guest,
    lab,
    prepared,
    run,
    ssh,
    statuses,
    terminate,
)

from control_server import api, images
from control_server.inventory import Inventory
from control_server.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]
__all__ = ["guest", "lab", "prepared"]  # fixtures, imported for pytest to find
QEMU_IMG = shutil.which("qemu-img")


def _images(lab: Lab, pattern: str, call: str, *args: object) -> list[images.HostOutcome]:
    inv = Inventory.load([str(lab.inventory)])
    config = api.RunConfig(become=True)
    work = getattr(images, call)
    return asyncio.run(work(inv.hosts(pattern), config, *args))  # type: ignore[no-any-return]


@pytest.mark.skipif(QEMU_IMG is None, reason="needs qemu-img (scripts/bootstrap.sh installs qemu-utils)")
def test_launch_from_a_pushed_image(prepared: Lab, guest: dict[str, str], tmp_path: Path) -> None:
    assert QEMU_IMG is not None
    first, second = prepared.hosts[0].name, prepared.hosts[1].name
    src = tmp_path / "tiny.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(src), "64M"], check=True)
    image_name = f"tiny-{uuid.uuid4().hex[:6]}"
    image = images.inspect_image(src, image_name)
    [pushed] = _images(prepared, first, "push", image, lambda _e: None)
    assert pushed.status == "uploaded", pushed.message
    name = f"img-{uuid.uuid4().hex[:6]}"
    evars = {"name": name, "image": image_name, "disk_gib": 2, **guest}
    missing, events = run(prepared, second, "launch_instance", evars)
    assert missing.exit_code == 2 and statuses(events, second) == ["failed"]
    [why] = missing.hosts[second].failed_steps
    assert image_name in str(why) and "hostplane image push" in str(why)
    assert name not in ssh(prepared, second, "virsh -c qemu:///system vol-list hostplane")
    result, events = run(prepared, first, "launch_instance", evars)
    assert_ok(result)
    try:
        info = json.loads(ssh(prepared, first, "qemu-img info --output=json -U "
                                               f"/var/lib/hostplane/images/{name}.qcow2"))
        assert info["backing-filename"] == f"/var/lib/hostplane/base/sha256-{image.digest}.qcow2"
        assert info["backing-filename-format"] == "qcow2"
        assert info["virtual-size"] == 2 << 30
        [refused] = _images(prepared, first, "remove", image_name, lambda _e: None)
        assert refused.status == "failed" and f"in use by instance {name}" in refused.message
    finally:
        terminate(prepared, name, first)
    base = f"/var/lib/hostplane/base/sha256-{image.digest}.qcow2"
    assert ssh(prepared, first, f"test -f {base} && echo kept").strip() == "kept"
    [removed] = _images(prepared, first, "remove", image_name, lambda _e: None)
    assert removed.status == "changed", removed.message
