"""The libvirt part of ``facts``: what this host can run, as libvirt sees it.

``gather()`` connects to ``$LIBVIRT_DEFAULT_URI`` (else ``qemu:///system``) and reports:
libvirt and hypervisor (QEMU) versions, KVM usability (``/dev/kvm`` checked properly, plus
libvirt's own view) and the domain type ``auto`` resolves to, the host CPU (model, vendor,
features, topology), memory (total, free), pools with free space, networks, and every
domain with its state, vCPUs and memory. Each section that cannot be read says
``{"error": ...}``; without the bindings: ``{"available": False, "reason": ...}``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from host_executor.actions import libvirt_common as common
from host_executor.errors import StepFailed

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Callable, Dict, List


def version_text(number: int) -> str:
    return "%d.%d.%d" % (number // 1000000, number // 1000 % 1000, number % 1000)


def _versions(s: common.Session) -> Dict[str, Any]:
    conn = s.conn
    kind = conn.getType()
    info: Dict[str, Any] = {"libvirt": version_text(conn.getLibVersion()), "hypervisor": kind,
                            "hypervisor_version": version_text(conn.getVersion())}
    if kind == "QEMU":
        info["qemu"] = info["hypervisor_version"]
    return info


def _kvm(s: common.Session) -> Dict[str, Any]:
    info = common.kvm_status()
    root = ET.fromstring(s.conn.getCapabilities())
    arch = root.findtext("host/cpu/arch")
    libvirt_ok, why = common.libvirt_kvm(s, arch)
    info["libvirt_kvm"] = libvirt_ok
    info["libvirt_reason"] = why
    info["usable"] = bool(info["usable"] and libvirt_ok is not False)
    info["domain_type"], info["domain_type_reason"] = common.choose_domain_type(s, arch)
    return info


def _cpu(s: common.Session) -> Dict[str, Any]:
    root = ET.fromstring(s.conn.getCapabilities())
    cpu = root.find("host/cpu")
    node = s.conn.getInfo()  # [arch, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
    info: Dict[str, Any] = {"arch": node[0], "count": node[2], "mhz": node[3], "numa_nodes": node[4],
                            "sockets": node[5], "cores": node[6], "threads": node[7]}
    if cpu is not None:
        info["model"] = cpu.findtext("model")
        info["vendor"] = cpu.findtext("vendor")
        info["features"] = [f.get("name") for f in cpu.findall("feature") if f.get("name")]
    return info


def _memory(s: common.Session) -> Dict[str, Any]:
    node = s.conn.getInfo()
    return {"total": node[1] * 1024 * 1024, "free": s.conn.getFreeMemory()}


def _pools(s: common.Session) -> List[Dict[str, Any]]:
    from host_executor.actions.libvirt_pool import pool_data

    return [pool_data(s, pool, pool.name()) for pool in s.conn.listAllStoragePools(0)]


def _networks(s: common.Session) -> List[Dict[str, Any]]:
    from host_executor.actions.libvirt_network import network_data

    return [network_data(s, net, net.name()) for net in s.conn.listAllNetworks(0)]


def _domains(s: common.Session) -> List[Dict[str, Any]]:
    found = []
    for dom in s.conn.listAllDomains(0):
        info = dom.info()  # [state, max memory KiB, memory KiB, vcpus, cpu time ns]
        active = bool(dom.isActive())
        try:
            autostart = bool(dom.autostart())
        except s.lv.libvirtError:
            autostart = False
        found.append({
            "name": dom.name(), "uuid": dom.UUIDString(), "state": common.state_name(info[0]),
            "active": active, "persistent": bool(dom.isPersistent()), "autostart": autostart,
            "id": dom.ID() if active else None, "vcpus": info[3],
            "memory": info[1] * 1024, "current_memory": info[2] * 1024,
        })
    return found


SECTIONS: Dict[str, Callable[[common.Session], Any]] = {
    "versions": _versions,
    "kvm": _kvm,
    "cpu": _cpu,
    "memory": _memory,
    "pools": _pools,
    "networks": _networks,
    "domains": _domains,
}


def gather() -> Dict[str, Any]:
    try:
        lv = common.bindings()
    except StepFailed:
        return {"available": False, "reason": common.MISSING_REASON}
    uri = common.default_uri()
    info: Dict[str, Any] = {"available": True, "bindings_version": version_text(lv.getVersion()),
                            "uri": uri}
    try:
        conn = common.connection(lv, uri)
    except StepFailed as exc:
        info.update(connected=False, error=exc.message, kvm=common.kvm_status())
        return info
    info["connected"] = True
    from host_executor.step import StepContext

    session = common.Session(lv, conn, uri, StepContext(0, "facts", "facts"))
    for name, section in SECTIONS.items():
        try:
            info[name] = section(session)
        except lv.libvirtError as exc:
            info[name] = {"error": common.libvirt_failure(lv, exc).message}
    return info
