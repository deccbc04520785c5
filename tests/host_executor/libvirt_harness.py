"""Helpers of the libvirt action tests: the executor under Debian's python3 with
python3-libvirt, against libvirt's ``test:///`` driver (no daemon).

Every executor run is a new process, and ``test:///default`` starts afresh in each: a
lifecycle is several steps of ONE request, or a ``test:///FILE.xml`` node file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor, Outcome, request

SYSTEM_PYTHON = "/usr/bin/python3"
TEST_URI = "test:///default"


def _has_libvirt() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import libvirt"], capture_output=True)
    return probe.returncode == 0


HAVE_LIBVIRT = _has_libvirt()
needs_libvirt = pytest.mark.skipif(
    not HAVE_LIBVIRT, reason=f"{SYSTEM_PYTHON} cannot import libvirt (apt-get install python3-libvirt)")


def lv_step(title: str, action: str, /, **args: Any) -> dict[str, Any]:
    """A libvirt step on the test driver unless ``uri`` is given."""
    if action.startswith("libvirt_") or args.get("domain") is not None:
        args.setdefault("uri", TEST_URI)
    return {"name": title, "action": action, "args": args}


def run(executor: Executor, steps: list[dict[str, Any]], **kw: Any) -> Outcome:
    out = executor.run(request(steps, **kw))
    assert "Traceback" not in out.stderr, out.stderr
    assert "libvirt: " not in out.stderr, out.stderr  # libvirt's error printing is silenced
    for end in out.ends:
        assert "traceback" not in end["data"], end["data"]
    return out


def by_name(out: Outcome) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in out.ends}


def domain_xml(name: str = "vm1", memory_mib: int = 256, vcpus: int = 1,
               networks: tuple[str, ...] = ("default",), serial_log: str | None = None,
               dtype: str = "auto", volume: str | None = None, pool: str = "default-pool",
               kernel: bool = True) -> str:
    """A domain like the shipped partial (``partials/domain.xml.j2``) writes."""
    boot = ("<kernel>/guest/vmlinuz</kernel><initrd>/guest/initrd.img</initrd>"
            "<cmdline>console=ttyS0 hostplane.ready=HOSTPLANE-GUEST-READY</cmdline>"
            if kernel else "<boot dev='hd'/>")
    disk = (f"<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source pool='{pool}' volume='{volume}'/><target dev='vda' bus='virtio'/></disk>"
            if volume else "")
    nics = "".join(f"<interface type='network'><source network='{n}'/><model type='virtio'/>"
                   "</interface>" for n in networks)
    serial = (f"<serial type='file'><source path='{serial_log}' append='off'/><target port='0'/>"
              f"</serial><console type='file'><source path='{serial_log}' append='off'/>"
              "<target type='serial' port='0'/></console>" if serial_log else "")
    return (f"<domain type='{dtype}'>\n  <name>{name}</name>\n"
            f"  <memory unit='MiB'>{memory_mib}</memory>\n"
            f"  <currentMemory unit='MiB'>{memory_mib}</currentMemory>\n"
            f"  <vcpu placement='static'>{vcpus}</vcpu>\n"
            f"  <os><type arch='x86_64'>hvm</type>{boot}</os>\n"
            "  <features><acpi/></features>\n  <clock offset='utc'/>\n"
            f"  <devices>{disk}{nics}{serial}<memballoon model='none'/></devices>\n</domain>\n")


def network_xml(name: str = "net1", subnet: int = 100, dhcp_end: int = 254) -> str:
    return (f"<network><name>{name}</name><forward mode='nat'/>"
            f"<ip address='192.168.{subnet}.1' netmask='255.255.255.0'><dhcp>"
            f"<range start='192.168.{subnet}.2' end='192.168.{subnet}.{dhcp_end}'/></dhcp></ip>"
            "</network>")


def pool_xml(name: str, path: str) -> str:
    return (f"<pool type='dir'><name>{name}</name><target><path>{path}</path>"
            "<permissions><mode>0711</mode></permissions></target></pool>")


def node_file(tmp: Path, body: str) -> str:
    """A ``test:///`` driver node file holding ``body`` (domains, networks, pools)."""
    path = tmp / "node.xml"
    path.write_text(f"<node>\n{body}\n</node>\n")
    return f"test://{path}"


def qcow2_image(path: Path, size: int) -> Path:
    """A file with a qcow2 header claiming ``size`` bytes (enough for the size probe)."""
    header = b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + size.to_bytes(8, "big")
    path.write_bytes(header + bytes(512 - len(header)))
    return path


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
