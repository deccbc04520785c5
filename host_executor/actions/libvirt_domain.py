"""``libvirt_domain``: a domain defined, running, shut off, paused or absent.

- ``xml`` defines the domain (or redefines it when what the XML specifies differs from the
  current persistent definition, see ``libvirt_xml.differences``). A redefinition keeps the
  domain's UUID and its interfaces' MACs, and the message names what differed
  (``memory 262144 -> 524288 KiB, vcpu 1 -> 2``). ``<domain type='auto'>`` becomes ``kvm``
  where KVM is usable on this host, else ``qemu`` (TCG), decided here.
- ``state``: ``defined`` (default; the run state is left alone), ``running`` (starts,
  resumes; ``reboot: true`` reboots a running domain, ACPI, and starts a stopped one),
  ``shutoff``, ``paused``, ``absent``. Before a start or reboot the domain's serial log
  files are emptied, so an old ready marker never satisfies a ``wait``.
- Stopping asks for an ACPI shutdown and powers off (destroy) after ``shutdown_timeout``
  seconds (0: at once; default 60 for ``shutoff``, clamped to the step's timeout, and 0
  for ``absent``). A paused domain is powered off at once.
- ``absent`` undefines with the managed-save, snapshot/checkpoint-metadata and NVRAM flags
  (dropping the ones a driver does not know); ``remove_storage`` also deletes the domain's
  disks that are volumes of a libvirt pool.
- ``autostart`` sets libvirt's autostart flag.

Check mode reports what would change and changes nothing; a step on a domain that only an
earlier step would have defined (no ``xml`` here) is ``skipped``, as for ``wait``.

``data`` is the resulting domain: name, uuid, type, state, active, persistent, autostart,
id, vcpus, memory (bytes), macs, serial_logs; ``changes`` lists what changed.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.actions import libvirt_xml
from host_executor.actions.libvirt_common import choose_domain_type, run_libvirt, state_name
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext

DEFAULT_SHUTDOWN_TIMEOUT = 60.0
POLL = 0.2
_UNDEFINE_FLAGS = (
    ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
     "VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA"),
    ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
     "VIR_DOMAIN_UNDEFINE_NVRAM"),
    ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA"),
    ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE",),
    (),
)
_UNSUPPORTED = ("VIR_ERR_INVALID_ARG", "VIR_ERR_NO_SUPPORT", "VIR_ERR_ARGUMENT_UNSUPPORTED")


def check_args(args: Dict[str, Any]) -> None:
    if args.get("xml") is not None:
        libvirt_xml.parse(args["xml"], "domain")
    timeout = args.get("shutdown_timeout")
    if timeout is not None and timeout < 0:
        raise protocol.ProtocolError("expected seconds >= 0", "shutdown_timeout")
    state = args.get("state") or "defined"
    if args.get("reboot") and state != "running":
        raise protocol.ProtocolError("reboot needs state: running", "reboot")
    if args.get("remove_storage") and state != "absent":
        raise protocol.ProtocolError("remove_storage needs state: absent", "remove_storage")


class _Outcome:
    """What one step did (or, in check mode, would do)."""

    __slots__ = ("changes", "data", "diff")

    def __init__(self) -> None:
        self.changes: List[str] = []
        self.data: Dict[str, Any] = {}
        self.diff: Optional[str] = None


def run_domain(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    state = args.get("state") or "defined"
    out = _Outcome()
    s.doing = "looking up domain %s" % name
    dom = s.lookup(s.conn.lookupByName, name, "VIR_ERR_NO_DOMAIN")
    if state == "absent":
        _absent(s, dom, args, out)
        return _result(s, dom if s.check else None, name, out)
    if args.get("xml") is not None:
        dom = _ensure_definition(s, dom, args, out)
    elif dom is None:
        if s.check:  # an earlier step would have defined it, had it really run
            return StepResult("skipped", msg="domain %s is not defined yet (check mode: earlier "
                              "steps did not really run)" % name, data={"name": name, "exists": False})
        raise StepFailed("domain %s is not defined, and the step gives no xml to define it" % name)
    if args.get("autostart") is not None:
        _ensure_autostart(s, dom, bool(args["autostart"]), out)
    if state != "defined":
        _ensure_state(s, dom, state, args, out)
    return _result(s, dom, name, out)


def _result(s: Session, dom: Any, name: str, out: _Outcome) -> StepResult:
    s.doing = "reading domain %s" % name
    data = _domain_data(s, dom, name)
    data.update(out.data)
    data["changes"] = out.changes
    if out.changes:
        head = "domain %s (check mode) would be: " % name if s.check else "domain %s: " % name
        return StepResult("changed", msg=head + ", ".join(out.changes), data=data, diff=out.diff)
    return StepResult("ok", msg="domain %s is %s" % (name, data["state"]), data=data)


def _domain_data(s: Session, dom: Any, name: str) -> Dict[str, Any]:
    if dom is None:
        return {"name": name, "state": "absent", "exists": False}
    code = dom.state()[0]
    info = dom.info()
    active = bool(dom.isActive())
    root = ET.fromstring(dom.XMLDesc(0))
    try:
        autostart = bool(dom.autostart())
    except s.lv.libvirtError:
        autostart = False
    return {
        "name": name, "exists": True, "uuid": dom.UUIDString(), "type": root.get("type"),
        "state": state_name(code), "active": active, "persistent": bool(dom.isPersistent()),
        "autostart": autostart, "id": dom.ID() if active else None,
        "vcpus": info[3], "memory": info[1] * 1024,
        "macs": [m.get("address") for m in root.findall("devices/interface/mac")],
        "serial_logs": libvirt_xml.file_sources(root),
    }


# --- definition -------------------------------------------------------------------------


def _wanted_xml(s: Session, args: Dict[str, Any], out: _Outcome) -> ET.Element:
    root = libvirt_xml.parse(args["xml"], "domain")
    libvirt_xml.check_name(root, args["name"], "domain")
    if root.get("type") == "auto":
        os_type = root.find("os/type")
        arch = os_type.get("arch") if os_type is not None else None
        s.doing = "choosing the domain type"
        chosen, why = choose_domain_type(s, arch)
        root.set("type", chosen)
        out.data["domain_type"] = {"chosen": chosen, "reason": why}
    return root


def _ensure_definition(s: Session, dom: Any, args: Dict[str, Any], out: _Outcome) -> Any:
    name = args["name"]
    root = _wanted_xml(s, args, out)
    if dom is None:
        out.changes.append("defined")
        if s.check:
            return None
        s.doing = "defining domain %s" % name
        return s.conn.defineXML(libvirt_xml.to_text(root))
    out.data["existed"] = True  # a rollback must not undo (undefine) what it did not create
    s.doing = "reading domain %s" % name
    before = s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE")
    current = ET.fromstring(before)
    libvirt_xml.keep_uuid(root, current)
    libvirt_xml.keep_macs(root, current)
    diffs = libvirt_xml.differences(root, current)
    if not diffs:
        return dom
    out.data["differences"] = diffs
    note = " (takes effect at the next start)" if dom.isActive() else ""
    if s.check:
        out.changes.append("redefined (%s)%s" % (libvirt_xml.summary(diffs), note))
        return dom
    s.doing = "redefining domain %s" % name
    dom = s.conn.defineXML(libvirt_xml.to_text(root))
    after = s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE")
    if libvirt_xml.canonical(after) == libvirt_xml.canonical(before):
        # The comparison was stricter than libvirt: its definition came out the same.
        out.data.pop("differences", None)
        return dom
    out.changes.append("redefined (%s)%s" % (libvirt_xml.summary(diffs), note))
    if s.ctx.diff:
        out.diff = libvirt_xml.unified_diff(before, after, "domain " + name)
    return dom


def _ensure_autostart(s: Session, dom: Any, wanted: bool, out: _Outcome) -> None:
    current = bool(dom.autostart()) if dom is not None else False
    if dom is None and not wanted:
        return
    if current != wanted:
        out.changes.append("autostart %s" % ("on" if wanted else "off"))
        if not s.check:
            s.doing = "setting autostart of domain %s" % dom.name()
            dom.setAutostart(1 if wanted else 0)


# --- run state --------------------------------------------------------------------------


def _ensure_state(s: Session, dom: Any, state: str, args: Dict[str, Any], out: _Outcome) -> None:
    if dom is None:  # check mode, not defined yet
        if state in ("running", "paused"):
            out.changes.append("started" if state == "running" else "started paused")
        return
    current = state_name(dom.state()[0])
    active = bool(dom.isActive())
    if state == "running":
        if not active:
            _start(s, dom, out, "started")
        elif current == "paused":
            _act(s, out, "resumed", "resuming domain", dom.resume)
        elif current == "pmsuspended":
            _act(s, out, "woken up", "waking up domain", lambda: dom.pMWakeup(0))
        elif current == "crashed":
            _act(s, out, "powered off (crashed)", "destroying domain", dom.destroy)
            _start(s, dom, out, "started")
        elif args.get("reboot"):
            _reboot(s, dom, out)
    elif state == "shutoff":
        if active:
            _stop(s, dom, _shutdown_timeout(s, args, DEFAULT_SHUTDOWN_TIMEOUT), out)
    elif state == "paused":
        if not active:
            flag = s.lv.VIR_DOMAIN_START_PAUSED
            _start(s, dom, out, "started paused", flag)
        elif current != "paused":
            _act(s, out, "paused", "pausing domain", dom.suspend)


def _act(s: Session, out: _Outcome, change: str, doing: str, fn: Any) -> None:
    out.changes.append(change)
    if not s.check:
        s.doing = doing
        fn()


def _truncate_logs(s: Session, dom: Any, out: _Outcome) -> None:
    """Empty the serial log files, so that a wait only sees what this boot prints."""
    root = ET.fromstring(s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE"))
    errors = {}
    for path in libvirt_xml.file_sources(root):
        try:
            if os.path.exists(path) and os.path.getsize(path):
                os.truncate(path, 0)
        except OSError as exc:
            errors[path] = exc.strerror or str(exc)
    if errors:
        out.data["serial_log_errors"] = errors


def _start(s: Session, dom: Any, out: _Outcome, change: str, flags: int = 0) -> None:
    out.changes.append(change)
    if s.check:
        return
    _truncate_logs(s, dom, out)
    s.doing = "starting domain %s" % dom.name()
    if not flags:
        dom.create()
        return
    try:
        dom.createWithFlags(flags)
    except s.lv.libvirtError as exc:
        if not s.is_error(exc, *_UNSUPPORTED):
            raise
        dom.create()  # a driver that can't start paused: start, then pause
        dom.suspend()


def _reboot(s: Session, dom: Any, out: _Outcome) -> None:
    out.changes.append("rebooted (ACPI)")
    if s.check:
        return
    _truncate_logs(s, dom, out)
    s.doing = "rebooting domain %s" % dom.name()
    try:
        dom.reboot(s.lv.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
    except s.lv.libvirtError as exc:
        if not s.is_error(exc, *_UNSUPPORTED):
            raise
        dom.reboot(0)


def _shutdown_timeout(s: Session, args: Dict[str, Any], default: float) -> float:
    timeout = args.get("shutdown_timeout")
    if timeout is not None:
        return float(timeout)
    if s.ctx.timeout is not None:
        return max(0.0, min(default, s.ctx.timeout - 5.0))
    return default


def _still_active(s: Session, dom: Any) -> bool:
    try:
        return bool(dom.isActive())
    except s.lv.libvirtError as exc:
        if s.is_error(exc, "VIR_ERR_NO_DOMAIN"):
            return False  # a transient domain is gone once it stops
        raise


def _stop(s: Session, dom: Any, timeout: float, out: _Outcome) -> None:
    """ACPI shutdown, then destroy once ``timeout`` runs out (at once for 0 or a paused domain)."""
    name = dom.name()
    paused = state_name(dom.state()[0]) == "paused"
    if s.check:
        out.changes.append("shut down" if timeout > 0 and not paused else "powered off")
        return
    if timeout > 0 and not paused:
        s.doing = "shutting down domain %s (ACPI)" % name
        started = time.monotonic()
        _acpi_shutdown(s, dom)
        while _still_active(s, dom) and time.monotonic() - started < timeout:
            s.wait(POLL, "waiting for domain %s to shut down" % name)
        if not _still_active(s, dom):
            out.changes.append("shut down (ACPI, %.1f s)" % (time.monotonic() - started))
            return
        out.changes.append("powered off after %g s without an ACPI shutdown" % timeout)
    else:
        out.changes.append("powered off")
    s.doing = "powering off domain %s" % name
    try:
        dom.destroy()
    except s.lv.libvirtError:
        if _still_active(s, dom):
            raise


def _acpi_shutdown(s: Session, dom: Any) -> None:
    try:
        dom.shutdownFlags(s.lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    except s.lv.libvirtError as exc:
        if s.is_error(exc, "VIR_ERR_OPERATION_INVALID") and not _still_active(s, dom):
            return
        if not s.is_error(exc, *_UNSUPPORTED):
            raise
        dom.shutdown()


# --- absent -----------------------------------------------------------------------------


def _absent(s: Session, dom: Any, args: Dict[str, Any], out: _Outcome) -> None:
    if dom is None:
        return
    name = dom.name()
    persistent = bool(dom.isPersistent())
    volumes = _volumes(s, dom) if args.get("remove_storage") else []
    if _still_active(s, dom):
        _stop(s, dom, _shutdown_timeout(s, args, 0.0), out)
    if persistent:
        out.changes.append("undefined")
        if not s.check:
            s.doing = "undefining domain %s" % name
            _undefine(s, dom)
    removed = []
    for vol in volumes:
        path = vol.path()
        if not s.check:
            s.doing = "deleting volume %s of domain %s" % (path, name)
            try:
                vol.delete(0)
            except s.lv.libvirtError as exc:
                if not s.is_error(exc, "VIR_ERR_NO_STORAGE_VOL"):
                    raise
                continue
        removed.append(path)
    if removed:
        out.changes.append("volumes deleted (%s)" % ", ".join(removed))
        out.data["volumes_deleted"] = removed


def _undefine(s: Session, dom: Any) -> None:
    """Undefine with every cleanup flag the driver knows, dropping the ones it refuses."""
    for names in _UNDEFINE_FLAGS:
        flags = 0
        for flag in names:
            flags |= getattr(s.lv, flag, 0)
        try:
            dom.undefineFlags(flags)
            return
        except s.lv.libvirtError as exc:
            if not flags or not s.is_error(exc, *_UNSUPPORTED):
                raise


def _volumes(s: Session, dom: Any) -> List[Any]:
    """The storage volumes behind the domain's disks (those that belong to a libvirt pool)."""
    s.doing = "finding the volumes of domain %s" % dom.name()
    root = ET.fromstring(s.xml_desc(dom, "VIR_DOMAIN_XML_INACTIVE"))
    found: List[Any] = []
    for disk in root.findall("devices/disk"):
        src = disk.find("source")
        if disk.get("device", "disk") != "disk" or src is None:
            continue
        vol = None
        if disk.get("type") == "volume" and src.get("pool") and src.get("volume"):
            pool = s.lookup(s.conn.storagePoolLookupByName, src.get("pool") or "", "VIR_ERR_NO_STORAGE_POOL")
            if pool is not None and pool.isActive():
                vol = s.lookup(pool.storageVolLookupByName, src.get("volume") or "", "VIR_ERR_NO_STORAGE_VOL")
        elif src.get("file") or src.get("dev"):
            path = src.get("file") or src.get("dev") or ""
            vol = s.lookup(s.conn.storageVolLookupByPath, path, "VIR_ERR_NO_STORAGE_VOL")
        if vol is not None:
            found.append(vol)
    return found
