"""``facts``: what this host is — OS, kernel, CPU, memory, disks, Python, KVM, libvirt.

Everything lands in ``data``, status ``ok`` (reading changes nothing; the same in check
mode). ``gather`` picks a subset of ``GROUPS``. Each group is read independently: one that
cannot be read reports ``{"error": ...}`` instead of failing the step. The libvirt group
comes from ``libvirt_facts`` (imported, with the bindings, only when gathered).
"""

from __future__ import annotations

import os
import sys

from host_executor import protocol
from host_executor.step import StepContext, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Callable, Dict, List

# Filesystems that are not storage: kernel interfaces, memory, containers' plumbing.
PSEUDO_FS = frozenset((
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
    "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs",
    "tracefs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.lxcfs",
))


def read_text(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def os_release() -> Dict[str, Any]:
    info: Dict[str, Any] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = read_text(path)
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                info[key.strip().lower()] = value.strip().strip("\"'")
        break
    return info


def kernel() -> Dict[str, Any]:
    uname = os.uname()
    return {"name": uname.sysname, "release": uname.release, "version": uname.version}


def cpu() -> Dict[str, Any]:
    info: Dict[str, Any] = {"count": os.cpu_count(), "model": None, "vendor": None, "flags": []}
    try:
        info["usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["usable"] = info["count"]
    try:
        text = read_text("/proc/cpuinfo")
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "cpu model") and info["model"] is None:
            info["model"] = value
        elif key == "vendor_id" and info["vendor"] is None:
            info["vendor"] = value
        elif key in ("flags", "Features") and not info["flags"]:
            info["flags"] = value.split()
    flags = set(info["flags"])
    info["virtualization"] = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
    return info


def memory() -> Dict[str, Any]:
    fields = {"MemTotal": "total", "MemAvailable": "available", "MemFree": "free",
              "SwapTotal": "swap_total", "SwapFree": "swap_free"}
    info: Dict[str, Any] = {}
    for line in read_text("/proc/meminfo").splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            parts = value.split()
            info[fields[key]] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return info


def _unescape(field: str) -> str:
    # /proc/mounts writes spaces, tabs and newlines in paths as octal escapes.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def disks() -> List[Dict[str, Any]]:
    found: List[Dict[str, Any]] = []
    seen = set()
    for line in read_text("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[2] in PSEUDO_FS:
            continue
        device, mount, fstype = _unescape(parts[0]), _unescape(parts[1]), parts[2]
        if mount in seen:
            continue
        seen.add(mount)
        try:
            vfs = os.statvfs(mount)
        except OSError:
            continue
        if vfs.f_blocks == 0:
            continue  # nothing to store on: a leftover pseudo filesystem
        found.append({
            "device": device, "mount": mount, "fstype": fstype,
            "size": vfs.f_blocks * vfs.f_frsize,
            "free": vfs.f_bfree * vfs.f_frsize,
            "available": vfs.f_bavail * vfs.f_frsize,
            "readonly": "ro" in (parts[3].split(",") if len(parts) > 3 else []),
        })
    return found


def python() -> Dict[str, Any]:
    return {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "implementation": sys.implementation.name,
    }


def kvm() -> Dict[str, Any]:
    # Usable, not merely present: /dev/kvm opens read-write and answers the KVM ioctls.
    from host_executor.actions.libvirt_common import kvm_status

    return kvm_status()


def libvirt() -> Dict[str, Any]:
    from host_executor.actions.libvirt_facts import gather

    return gather()


GROUPS: Dict[str, Callable[[], Any]] = {
    "os": os_release,
    "kernel": kernel,
    "hostname": lambda: os.uname().nodename,
    "architecture": lambda: os.uname().machine,
    "cpu": cpu,
    "memory": memory,
    "disks": disks,
    "python": python,
    "kvm": kvm,
    "libvirt": libvirt,
}


def check_args(args: Dict[str, Any]) -> None:
    for name in args.get("gather") or []:
        if not isinstance(name, str) or name not in GROUPS:
            raise protocol.ProtocolError(
                "unknown facts group %r (known: %s)" % (name, ", ".join(sorted(GROUPS))), "gather"
            )


def run_facts(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    data: Dict[str, Any] = {}
    for name in args.get("gather") or list(GROUPS):
        try:
            data[name] = GROUPS[name]()
        except Exception as exc:  # one unreadable group must not hide the others
            data[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    return StepResult("ok", data=data)
