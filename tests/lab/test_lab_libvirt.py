"""The libvirt lab: real libvirtd + QEMU (TCG) in a container, a tiny guest that boots.

Everything goes through the system ``ssh`` client as the lab's ``hostplane`` user, the
way hostplane's executor reaches a hypervisor host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_server.lab import Lab, lab_down, lab_up

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]

LAB = f"hostplane-labvirt-{uuid.uuid4().hex[:6]}"  # hermetic: one lab per run
GUEST = "/var/lib/hostplane/guest"
# Under TCG on a busy 2-core machine a boot can take far longer than the ~6 s it takes idle.
BOOT_TIMEOUT = 300

DOMAIN = """<domain type='qemu'>
  <name>hpguest</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{guest}/vmlinux</kernel>
    <initrd>{guest}/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='/var/log/hostplane/hpguest.log'/><target port='0'/></serial>
    <interface type='network'><source network='hpnet'/><model type='virtio'/></interface>
    <memballoon model='none'/>
  </devices>
</domain>
"""

NETWORK = """<network>
  <name>hpnet</name>
  <bridge name='hpbr0'/>
  <ip address='10.213.{x}.1' netmask='255.255.255.0'>
    <dhcp><range start='10.213.{x}.100' end='10.213.{x}.150'/></dhcp>
  </ip>
</network>
"""


def _ssh(lab: Lab, command: str, stdin: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", lab.hosts[0].name, command],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(lab: Lab, command: str, stdin: str | None = None, timeout: float = 60) -> str:
    proc = _ssh(lab, command, stdin, timeout)
    assert proc.returncode == 0, f"{command}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def vlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("ssh") is None or not (os.geteuid() == 0
                                           or Path("/var/run/docker.sock").exists()):
        pytest.skip("needs an ssh client and a Docker engine (or root to start one)")
    folder = tmp_path_factory.mktemp("vlab")
    lab = lab_up(1, name=LAB, folder=folder, libvirt=True)
    yield lab
    lab_down(LAB, folder)


def test_libvirt_answers_the_hostplane_user(vlab: Lab) -> None:
    out = _ok(vlab, "python3 -c 'import libvirt; c = libvirt.open(\"qemu:///system\"); "
                    "print(c.getType(), c.getLibVersion() > 0)'")
    assert out == "QEMU True\n"
    # hostplane's default URI is the system daemon, not a per-user session daemon.
    assert _ok(vlab, "virsh uri") == "qemu:///system\n\n"
    assert _ok(vlab, "ls /var/lib/hostplane/guest").split() == [
        "initramfs.cpio.gz", "kernel-version", "vmlinux", "vmlinuz"]


def test_guest_boots_under_tcg_and_powers_off(vlab: Lab) -> None:
    # A libvirt network of the container's own (bridge, tap, dnsmasq), in 10.213.x.
    x = 254 if not vlab.hosts[0].address.startswith("10.213.254.") else 253
    _ok(vlab, "cat > /tmp/hpnet.xml && virsh net-define /tmp/hpnet.xml && virsh net-start hpnet",
        NETWORK.format(x=x))
    _ok(vlab, "cat > /tmp/hpguest.xml && virsh define /tmp/hpguest.xml",
        DOMAIN.format(guest=GUEST))
    started = time.monotonic()
    _ok(vlab, "virsh start hpguest")
    wait = (f"for i in $(seq {BOOT_TIMEOUT * 5}); do "
            "sudo grep -q HOSTPLANE-GUEST-READY /var/log/hostplane/hpguest.log && exit 0; "
            "sleep 0.2; done; sudo cat /var/log/hostplane/hpguest.log; exit 1")
    _ok(vlab, wait, timeout=BOOT_TIMEOUT + 30)
    boot = time.monotonic() - started
    print(f"guest boot to HOSTPLANE-GUEST-READY: {boot:.1f}s")
    # virtio_net drives the NIC inside the guest: it gets a lease from libvirt's dnsmasq.
    lease = (f"for i in $(seq 300); do sudo grep -q 'hostplane-guest: eth0 10.213.{x}.' "
             "/var/log/hostplane/hpguest.log && exit 0; sleep 0.2; done; exit 1")
    leased = _ssh(vlab, lease, timeout=90)
    log = _ok(vlab, "sudo cat /var/log/hostplane/hpguest.log")
    assert leased.returncode == 0 and "insmod" not in log, log
    # ACPI power button -> busybox acpid -> poweroff: the domain stops by itself.
    _ok(vlab, "virsh shutdown hpguest")
    _ok(vlab, "for i in $(seq 300); do virsh domstate hpguest | grep -q 'shut off' && exit 0; "
              "sleep 0.2; done; exit 1", timeout=90)
    _ok(vlab, "virsh undefine hpguest && virsh net-destroy hpnet && virsh net-undefine hpnet")
