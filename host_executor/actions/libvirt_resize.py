"""``libvirt_resize``: a domain's memory, vCPUs and a disk resized, the domain kept.

- ``memory_mib`` and ``vcpus`` set the persistent definition (the domain's XML edited in
  place and defined again: same UUID, same MACs, everything else untouched). On a running
  domain the change is also made live where the domain allows it: memory up to the running
  domain's maximum (through its balloon), vCPUs up to its maximum (hotplug); otherwise it
  takes effect at the next boot, and the message and ``data.pending`` say so.
- ``disk_capacity`` (bytes, or text like ``"2G"``) grows the disk ``disk`` (a target such
  as ``vda``; default: the first disk): ``blockResize`` on a running domain (QEMU tells the
  guest), else the volume's resize. A smaller size is refused: shrinking loses data.

Check mode says what would change. ``data``: name, uuid, macs, memory_mib and vcpus
(config and live), disk, ``changes``, ``pending`` (what waits for the next boot).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.actions import libvirt_xml
from host_executor.actions.libvirt_common import domain_missing, run_libvirt
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional, Tuple

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext

GIB = 1024 ** 3


def check_args(args: Dict[str, Any]) -> None:
    for key in ("memory_mib", "vcpus"):
        if args.get(key) is not None and args[key] < 1:
            raise protocol.ProtocolError("expected a number >= 1", key)
    if args.get("disk_capacity") is not None:
        try:
            libvirt_xml.parse_size(args["disk_capacity"])
        except ValueError as exc:
            raise protocol.ProtocolError(str(exc), "disk_capacity") from None
    if args.get("disk") is not None and args.get("disk_capacity") is None:
        raise protocol.ProtocolError("disk needs disk_capacity", "disk")


class _Plan:
    __slots__ = ("changes", "pending", "s")

    def __init__(self, s: Session) -> None:
        self.s = s
        self.changes: List[str] = []
        self.pending: List[str] = []


def run_resize(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    s.doing = "looking up domain %s" % name
    dom = s.lookup(s.conn.lookupByName, name, "VIR_ERR_NO_DOMAIN")
    if dom is None:
        return domain_missing(s, name)
    plan = _Plan(s)
    disk = _disk(plan, dom, args) if args.get("disk_capacity") is not None else None
    _config(plan, dom, args)
    if dom.isActive():
        _live(plan, dom, args)
    data = _data(s, dom)
    data.update({"disk": disk, "changes": plan.changes, "pending": plan.pending})
    if not plan.changes:
        return StepResult("ok", msg="domain %s already has that size" % name, data=data)
    head = "domain %s (check mode) would be: " % name if s.check else "domain %s: " % name
    return StepResult("changed", msg=head + ", ".join(plan.changes), data=data)


def _data(s: Session, dom: Any) -> Dict[str, Any]:
    config = ET.fromstring(s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE"))
    mem, vcpus = _sizes(config)
    active = bool(dom.isActive())
    info = dom.info()  # [state, max KiB, current KiB, vcpus, cpu time]
    return {
        "name": dom.name(), "uuid": dom.UUIDString(), "active": active,
        "macs": [m.get("address") for m in config.findall("devices/interface/mac")],
        "memory_mib": {"config": mem // 1024, "live": info[2] // 1024 if active else None},
        "vcpus": {"config": vcpus, "live": info[3] if active else None},
    }


def _sizes(root: ET.Element) -> Tuple[int, int]:
    """(current memory KiB, current vCPUs) of a definition."""
    node = root.find("currentMemory")
    if node is None:
        node = root.find("memory")
    mem = 0
    if node is not None:
        mem = libvirt_xml.parse_size((node.text or "0").strip() + (node.get("unit") or "KiB"))
    vcpu = root.find("vcpu")
    count = int((vcpu.get("current") or vcpu.text or "1").strip()) if vcpu is not None else 1
    return mem // 1024, count


# --- the persistent definition ------------------------------------------------------------


def _config(plan: _Plan, dom: Any, args: Dict[str, Any]) -> None:
    s = plan.s
    s.doing = "reading domain %s" % dom.name()
    root = ET.fromstring(s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE"))
    mem_kib, vcpus = _sizes(root)
    edits: List[str] = []
    if args.get("memory_mib") is not None and args["memory_mib"] * 1024 != mem_kib:
        edits.append("memory %d -> %d MiB" % (mem_kib // 1024, args["memory_mib"]))
        for tag in ("memory", "currentMemory"):
            node = root.find(tag)
            if node is None:
                node = ET.SubElement(root, tag)
            node.set("unit", "KiB")
            node.text = str(args["memory_mib"] * 1024)
    if args.get("vcpus") is not None and args["vcpus"] != vcpus:
        edits.append("vcpus %d -> %d" % (vcpus, args["vcpus"]))
        node = root.find("vcpu")
        if node is None:
            node = ET.SubElement(root, "vcpu")
        node.attrib.pop("current", None)
        node.text = str(args["vcpus"])
    if not edits:
        return
    plan.changes.extend(edits)
    if not s.check:
        s.doing = "defining domain %s with %s" % (dom.name(), ", ".join(edits))
        s.conn.defineXML(libvirt_xml.to_text(root))


# --- the running domain -------------------------------------------------------------------


def _live(plan: _Plan, dom: Any, args: Dict[str, Any]) -> None:
    """Apply to the running domain what it allows; note the rest as pending (next boot)."""
    s = plan.s
    info = dom.info()
    if args.get("memory_mib") is not None:
        want = args["memory_mib"] * 1024
        if want != info[2]:
            _live_one(plan, "memory %d MiB" % args["memory_mib"], want > info[1],
                      "above the running domain's maximum of %d MiB" % (info[1] // 1024),
                      lambda: dom.setMemoryFlags(want, s.lv.VIR_DOMAIN_AFFECT_LIVE))
    if args.get("vcpus") is not None and args["vcpus"] != info[3]:
        live_max = _live_max_vcpus(s, dom)
        _live_one(plan, "vcpus %d" % args["vcpus"], args["vcpus"] > live_max,
                  "above the running domain's maximum of %d" % live_max,
                  lambda: dom.setVcpusFlags(args["vcpus"], s.lv.VIR_DOMAIN_AFFECT_LIVE))


def _live_max_vcpus(s: Session, dom: Any) -> int:
    flags = s.lv.VIR_DOMAIN_AFFECT_LIVE | s.lv.VIR_DOMAIN_VCPU_MAXIMUM
    try:
        return int(dom.vcpusFlags(flags))
    except s.lv.libvirtError:
        return int(dom.info()[3])


def _live_one(plan: _Plan, what: str, too_big: bool, why: str, apply: Any) -> None:
    s = plan.s
    if too_big:
        plan.pending.append("%s at the next boot (%s)" % (what, why))
        plan.changes.append(plan.pending[-1])
        return
    if s.check:
        plan.changes.append("%s live" % what)
        return
    s.doing = "setting %s on the running domain" % what
    try:
        apply()
    except s.lv.libvirtError as exc:
        plan.pending.append("%s at the next boot (the running domain refused it: %s)"
                            % (what, exc.get_error_message() or exc))
        plan.changes.append(plan.pending[-1])
        return
    plan.changes.append("%s live" % what)


# --- disk -------------------------------------------------------------------------------


def _disk(plan: _Plan, dom: Any, args: Dict[str, Any]) -> Dict[str, Any]:
    s = plan.s
    name = dom.name()
    wanted = libvirt_xml.parse_size(args["disk_capacity"])
    target, source, vol = _find_disk(s, dom, args.get("disk"))
    active = bool(dom.isActive())
    if active:
        s.doing = "reading the size of disk %s of domain %s" % (target, name)
        size = int(dom.blockInfo(target, 0)[0])
    elif vol is not None:
        size = int(vol.info()[1])
    else:
        raise StepFailed("disk %s of domain %s (%s) is not a volume of a libvirt pool: it can "
                         "only be grown while the domain runs" % (target, name, source))
    data = {"target": target, "path": source, "capacity": size, "requested": wanted}
    if wanted < size:
        raise StepFailed(
            "disk %s of domain %s (%s) is %s: shrinking it to %s is refused (it would lose data)"
            % (target, name, source, _gib(size), _gib(wanted)), data={"disk": data})
    if wanted - size < 512:  # qemu-img rounds up to whole sectors
        return data
    plan.changes.append("disk %s %s -> %s%s" % (target, _gib(size), _gib(wanted),
                                                " live" if active else ""))
    if not s.check:
        s.doing = "growing disk %s of domain %s to %d bytes" % (target, name, wanted)
        try:
            if active:
                dom.blockResize(target, wanted, s.lv.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            else:
                vol.resize(wanted, 0)
        except s.lv.libvirtError as exc:
            message = exc.get_error_message() or str(exc)
            if "has snapshots" not in message:
                raise
            raise StepFailed(
                "disk %s of domain %s (%s) cannot grow: it is a qcow2 v2 image with internal "
                "snapshots, which QEMU does not resize; delete its snapshots (delete_snapshot) "
                "or make it qcow2 v3 (qemu-img amend -o compat=1.1 while the domain is shut off) "
                "first" % (target, name, source), data={"disk": data}) from None
        data["capacity"] = wanted
    return data


def _gib(size: int) -> str:
    return "%g GiB" % round(size / GIB, 3)


def _find_disk(s: Session, dom: Any, target: Optional[str]) -> Tuple[str, str, Any]:
    """(target, source, volume or None) of the domain's disk ``target`` (default: the first)."""
    root = ET.fromstring(s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE"))
    disks = [d for d in root.findall("devices/disk") if d.get("device", "disk") == "disk"]
    names = []
    for disk in disks:
        node = disk.find("target")
        dev = node.get("dev") if node is not None else None
        if dev and (target is None or dev == target):
            source, vol = _disk_volume(s, disk)
            return dev, source, vol
        names.append(dev or "")
    raise StepFailed("domain %s has no disk %s (its disks: %s)"
                     % (dom.name(), target or "at all", ", ".join(n for n in names if n) or "none"))


def _disk_volume(s: Session, disk: ET.Element) -> Tuple[str, Any]:
    src = disk.find("source")
    if src is None:
        return "(no source)", None
    if disk.get("type") == "volume" and src.get("pool") and src.get("volume"):
        where = "%s/%s" % (src.get("pool"), src.get("volume"))
        pool = s.lookup(s.conn.storagePoolLookupByName, src.get("pool") or "", "VIR_ERR_NO_STORAGE_POOL")
        if pool is None:
            return where, None
        return where, s.lookup(pool.storageVolLookupByName, src.get("volume") or "", "VIR_ERR_NO_STORAGE_VOL")
    path = src.get("file") or src.get("dev") or ""
    return path, s.lookup(s.conn.storageVolLookupByPath, path, "VIR_ERR_NO_STORAGE_VOL")
