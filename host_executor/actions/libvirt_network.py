"""``libvirt_network``: a libvirt network active, inactive or absent.

``xml`` defines the network (persistent), or redefines it when what the XML specifies
differs from the current definition (keeping its UUID; the message names what differed).
A redefinition of an active network takes effect when the network is restarted, which this
action does not do by itself (guests' interfaces would lose their link): the message and
``data.restart_needed`` say so. ``state`` (default ``active``): ``active`` starts it,
``inactive`` stops it, ``absent`` stops and undefines it. ``autostart`` sets libvirt's flag.

``data`` is the resulting network: name, uuid, active, persistent, autostart, bridge,
forward, ips; ``changes`` lists what changed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from host_executor.actions import libvirt_xml
from host_executor.actions.libvirt_common import run_libvirt
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext


def check_args(args: Dict[str, Any]) -> None:
    if args.get("xml") is not None:
        libvirt_xml.parse(args["xml"], "network")


def run_network(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    state = args.get("state") or "active"
    changes: List[str] = []
    extra: Dict[str, Any] = {}
    s.doing = "looking up network %s" % name
    net = s.lookup(s.conn.networkLookupByName, name, "VIR_ERR_NO_NETWORK")
    if state == "absent":
        if net is not None:
            _remove(s, net, changes)
            net = net if s.check else None
    else:
        if args.get("xml") is not None:
            net = _ensure_definition(s, net, args, changes, extra)
        elif net is None:
            if s.check:  # an earlier step would have defined it, had it really run
                return StepResult("skipped", msg="network %s is not defined yet (check mode: earlier "
                                  "steps did not really run)" % name, data={"name": name, "exists": False})
            raise StepFailed("network %s is not defined, and the step gives no xml to define it" % name)
        if args.get("autostart") is not None:
            _ensure_autostart(s, net, bool(args["autostart"]), changes)
        _ensure_active(s, net, state == "active", changes)
    data = network_data(s, net, name)
    data.update(extra)
    data["changes"] = changes
    if changes:
        head = "network %s (check mode) would be: " % name if s.check else "network %s: " % name
        return StepResult("changed", msg=head + ", ".join(changes), data=data)
    return StepResult("ok", msg="network %s is %s" % (name, _state(data)), data=data)


def _state(data: Dict[str, Any]) -> str:
    if not data.get("exists"):
        return "absent"
    return "active" if data.get("active") else "inactive"


def network_data(s: Session, net: Any, name: str) -> Dict[str, Any]:
    """What facts and the action report about one network."""
    if net is None:
        return {"name": name, "exists": False}
    root = ET.fromstring(net.XMLDesc(0))
    bridge = root.find("bridge")
    forward = root.find("forward")
    ips = []
    for ip in root.findall("ip"):
        entry: Dict[str, Any] = {k: v for k, v in ip.attrib.items()}
        ranges = [dict(r.attrib) for r in ip.findall("dhcp/range")]
        if ranges:
            entry["dhcp"] = ranges
        ips.append(entry)
    try:
        autostart = bool(net.autostart())
    except s.lv.libvirtError:
        autostart = False
    return {
        "name": name, "exists": True, "uuid": net.UUIDString(), "active": bool(net.isActive()),
        "persistent": bool(net.isPersistent()), "autostart": autostart,
        "bridge": bridge.get("name") if bridge is not None else None,
        "forward": (forward.get("mode") or "nat") if forward is not None else None,
        "ips": ips,
    }


def _ensure_definition(s: Session, net: Any, args: Dict[str, Any], changes: List[str],
                       extra: Dict[str, Any]) -> Any:
    name = args["name"]
    root = libvirt_xml.parse(args["xml"], "network")
    libvirt_xml.check_name(root, name, "network")
    if net is None:
        changes.append("defined")
        if s.check:
            return None
        s.doing = "defining network %s" % name
        return s.conn.networkDefineXML(libvirt_xml.to_text(root))
    extra["existed"] = True  # a rollback must not undo what it did not create
    s.doing = "reading network %s" % name
    before = s.xml_desc(net, "VIR_NETWORK_XML_INACTIVE")
    current = ET.fromstring(before)
    libvirt_xml.keep_uuid(root, current)
    diffs = libvirt_xml.differences(root, current)
    if not diffs:
        return net
    active = bool(net.isActive())
    note = " (takes effect when the network restarts)" if active else ""
    extra["differences"] = diffs
    extra["restart_needed"] = active
    changes.append("redefined (%s)%s" % (libvirt_xml.summary(diffs), note))
    if s.check:
        return net
    s.doing = "redefining network %s" % name
    return s.conn.networkDefineXML(libvirt_xml.to_text(root))


def _ensure_autostart(s: Session, net: Any, wanted: bool, changes: List[str]) -> None:
    current = bool(net.autostart()) if net is not None else False
    if current != wanted:
        changes.append("autostart %s" % ("on" if wanted else "off"))
        if not s.check:
            s.doing = "setting autostart of network %s" % net.name()
            net.setAutostart(1 if wanted else 0)


def _ensure_active(s: Session, net: Any, wanted: bool, changes: List[str]) -> None:
    active = bool(net.isActive()) if net is not None else False
    if active == wanted:
        return
    changes.append("started" if wanted else "stopped")
    if s.check:
        return
    s.doing = "%s network %s" % ("starting" if wanted else "stopping", net.name())
    if wanted:
        net.create()
    else:
        net.destroy()


def _remove(s: Session, net: Any, changes: List[str]) -> None:
    name = net.name()
    persistent = bool(net.isPersistent())
    if net.isActive():
        changes.append("stopped")
        if not s.check:
            s.doing = "stopping network %s" % name
            net.destroy()
    if persistent:
        changes.append("undefined")
        if not s.check:
            s.doing = "undefining network %s" % name
            net.undefine()
