"""``libvirt_snapshot``: a domain's internal snapshot present, absent, reverted to, or listed.

- ``state: present`` (default) takes snapshot ``name`` of ``domain`` unless it exists
  (then ``ok``: snapshots are idempotent by name). libvirt's default snapshot is internal
  (qcow2): of a shut-off domain, its disks; of a running one, its disks and memory state
  (QEMU's ``savevm``), so reverting resumes the guest where it was. Every disk must be
  qcow2; QEMU's refusal (a raw disk, a device that cannot migrate) is the step's error,
  naming the domain and the snapshot.
- ``state: absent`` deletes it (absent already: ``ok``).
- ``state: reverted`` reverts the domain to it (always ``changed``: what was written since
  cannot be known); the domain ends in the snapshot's state (running or shut off).
  ``force`` lets libvirt revert where it calls the revert risky.
- ``state: list`` lists the domain's snapshots (``ok``).

Check mode says what would happen and changes nothing; a domain that only an earlier step
would have defined is ``skipped``.

``data``: domain, uuid, name, exists, snapshot (name, state, memory, creation_time,
current, parent, description), ``snapshots`` for ``list``, ``changes``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.actions.libvirt_common import domain_missing, run_libvirt
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext

# qemu-img and QEMU's savevm take the name as a tag: keep it to what both read back unchanged.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_args(args: Dict[str, Any]) -> None:
    state = args.get("state") or "present"
    name = args.get("name")
    if state != "list":
        if name is None:
            raise protocol.ProtocolError("required when state is %s" % state, "name")
        if not _NAME.match(name):
            raise protocol.ProtocolError(
                "a snapshot name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, got %r" % name, "name")
    if args.get("force") and state != "reverted":
        raise protocol.ProtocolError("force needs state: reverted", "force")
    if args.get("description") is not None and state != "present":
        raise protocol.ProtocolError("description needs state: present", "description")


def run_snapshot(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    domain = args["domain"]
    state = args.get("state") or "present"
    s.doing = "looking up domain %s" % domain
    dom = s.lookup(s.conn.lookupByName, domain, "VIR_ERR_NO_DOMAIN")
    if dom is None:
        return domain_missing(s, domain, "domain")
    if state == "list":
        s.doing = "listing the snapshots of domain %s" % domain
        snaps = [_snapshot_data(s, snap) for snap in dom.listAllSnapshots(0)]
        snaps.sort(key=lambda d: (d["creation_time"] or 0, d["name"]))
        data = {"domain": domain, "uuid": dom.UUIDString(), "snapshots": snaps, "changes": []}
        names = ", ".join(d["name"] for d in snaps) or "none"
        return StepResult("ok", msg="domain %s: %d snapshot(s): %s" % (domain, len(snaps), names),
                          data=data)
    name = args["name"]
    s.doing = "looking up snapshot %s of domain %s" % (name, domain)
    snap = s.lookup(dom.snapshotLookupByName, name, "VIR_ERR_NO_DOMAIN_SNAPSHOT")
    if state == "present":
        return _present(s, dom, snap, args)
    if state == "absent":
        return _absent(s, dom, snap, name)
    return _revert(s, dom, snap, args)


def _where(dom: Any, name: str) -> str:
    return "snapshot %s of domain %s" % (name, dom.name())


def _data(s: Session, dom: Any, name: str, snap: Any, changes: List[str]) -> Dict[str, Any]:
    return {"domain": dom.name(), "uuid": dom.UUIDString(), "name": name,
            "exists": snap is not None, "snapshot": _snapshot_data(s, snap) if snap else None,
            "changes": changes}


def _result(s: Session, dom: Any, name: str, snap: Any, change: Optional[str]) -> StepResult:
    changes = [change] if change else []
    data = _data(s, dom, name, snap, changes)
    if not change:
        state = "exists" if snap is not None else "is absent"
        return StepResult("ok", msg="%s %s" % (_where(dom, name), state), data=data)
    head = "%s (check mode) would be: " if s.check else "%s: "
    return StepResult("changed", msg=head % _where(dom, name) + change, data=data)


def _present(s: Session, dom: Any, snap: Any, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    if snap is not None:
        return _result(s, dom, name, snap, None)
    running = bool(dom.isActive())
    what = "with memory state (the domain is running)" if running else "of the disks (the domain is shut off)"
    change = "taken, " + what
    if s.check:
        return _result(s, dom, name, None, change)
    root = ET.Element("domainsnapshot")
    ET.SubElement(root, "name").text = name
    if args.get("description"):
        ET.SubElement(root, "description").text = args["description"]
    s.doing = "taking %s %s" % (_where(dom, name), what)
    try:
        snap = dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), 0)
    except s.lv.libvirtError as exc:
        raise StepFailed(
            "%s could not be taken %s: %s (internal snapshots need every disk in qcow2, and a "
            "running guest's devices must allow QEMU to save its state)"
            % (_where(dom, name), what, exc.get_error_message() or exc),
            data={"domain": dom.name(), "name": name, "running": running}) from None
    return _result(s, dom, name, snap, change)


def _absent(s: Session, dom: Any, snap: Any, name: str) -> StepResult:
    if snap is None:
        return _result(s, dom, name, None, None)
    if not s.check:
        s.doing = "deleting %s" % _where(dom, name)
        snap.delete(0)
        snap = None
    return _result(s, dom, name, snap, "deleted")


def _revert(s: Session, dom: Any, snap: Any, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    if snap is None:
        s.doing = "listing the snapshots of domain %s" % dom.name()
        have = ", ".join(sorted(dom.snapshotListNames(0))) or "none"
        raise StepFailed("domain %s has no snapshot %s (it has: %s)" % (dom.name(), name, have),
                         data={"domain": dom.name(), "name": name, "exists": False})
    target = _snapshot_data(s, snap)["state"]
    change = "reverted to (the domain ends %s)" % ("running" if target == "running" else target)
    if not s.check:
        flags = s.lv.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE if args.get("force") else 0
        s.doing = "reverting domain %s to snapshot %s" % (dom.name(), name)
        dom.revertToSnapshot(snap, flags)
    return _result(s, dom, name, snap, change)


def _snapshot_data(s: Session, snap: Any) -> Dict[str, Any]:
    root = ET.fromstring(snap.getXMLDesc(0))
    memory = root.find("memory")
    created = root.findtext("creationTime")
    try:
        current = bool(snap.isCurrent(0))
    except s.lv.libvirtError:
        current = False
    return {
        "name": root.findtext("name") or snap.getName(),
        "state": root.findtext("state") or "unknown",
        "memory": memory is not None and memory.get("snapshot") not in (None, "no"),
        "creation_time": int(created) if created and created.isdigit() else None,
        "current": current,
        "parent": root.findtext("parent/name"),
        "description": root.findtext("description"),
    }
