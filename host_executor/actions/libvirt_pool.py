"""``libvirt_pool``: a storage pool (a ``dir`` pool at least) active, inactive or absent.

``xml`` defines the pool (persistent), or redefines it when what the XML specifies differs
from the current definition (keeping its UUID; an active pool picks the change up when it
is restarted, which ``data.restart_needed`` says). ``build: true`` builds the pool (for a
dir pool: creates its folder with the XML's permissions) when it is defined or started
here. ``state`` (default ``active``): ``active`` starts it, ``inactive`` stops it,
``absent`` stops and undefines it — the pool's volumes and folder stay on disk.

``data`` is the resulting pool: name, uuid, type, path, active, persistent, autostart,
capacity, allocation, available (bytes); ``changes`` lists what changed.
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
        libvirt_xml.parse(args["xml"], "pool")


def run_pool(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    name = args["name"]
    state = args.get("state") or "active"
    changes: List[str] = []
    extra: Dict[str, Any] = {}
    s.doing = "looking up storage pool %s" % name
    pool = s.lookup(s.conn.storagePoolLookupByName, name, "VIR_ERR_NO_STORAGE_POOL")
    if state == "absent":
        if pool is not None:
            _remove(s, pool, changes)
            pool = pool if s.check else None
    else:
        fresh = pool is None
        if args.get("xml") is not None:
            pool = _ensure_definition(s, pool, args, changes, extra)
        elif pool is None:
            if s.check:  # an earlier step would have defined it, had it really run
                return StepResult("skipped", msg="storage pool %s is not defined yet (check mode: "
                                  "earlier steps did not really run)" % name, data={"name": name, "exists": False})
            raise StepFailed("storage pool %s is not defined, and the step gives no xml to define it" % name)
        if args.get("build") and fresh:
            _build(s, pool, changes)
        if args.get("autostart") is not None:
            _ensure_autostart(s, pool, bool(args["autostart"]), changes)
        _ensure_active(s, pool, state == "active", bool(args.get("build")) and not fresh, changes)
    data = pool_data(s, pool, name)
    data.update(extra)
    data["changes"] = changes
    if changes:
        head = "storage pool %s (check mode) would be: " % name if s.check else "storage pool %s: " % name
        return StepResult("changed", msg=head + ", ".join(changes), data=data)
    state_now = "absent" if not data["exists"] else "active" if data["active"] else "inactive"
    return StepResult("ok", msg="storage pool %s is %s" % (name, state_now), data=data)


def pool_data(s: Session, pool: Any, name: str) -> Dict[str, Any]:
    """What facts and the action report about one pool."""
    if pool is None:
        return {"name": name, "exists": False}
    root = ET.fromstring(pool.XMLDesc(0))
    info = pool.info()  # [state, capacity, allocation, available]
    try:
        autostart = bool(pool.autostart())
    except s.lv.libvirtError:
        autostart = False
    active = bool(pool.isActive())
    return {
        "name": name, "exists": True, "uuid": pool.UUIDString(), "type": root.get("type"),
        "path": root.findtext("target/path"), "active": active,
        "persistent": bool(pool.isPersistent()), "autostart": autostart,
        "capacity": info[1] if active else None, "allocation": info[2] if active else None,
        "available": info[3] if active else None,
    }


def _ensure_definition(s: Session, pool: Any, args: Dict[str, Any], changes: List[str],
                       extra: Dict[str, Any]) -> Any:
    name = args["name"]
    root = libvirt_xml.parse(args["xml"], "pool")
    libvirt_xml.check_name(root, name, "storage pool")
    if pool is None:
        changes.append("defined")
        if s.check:
            return None
        s.doing = "defining storage pool %s" % name
        return s.conn.storagePoolDefineXML(libvirt_xml.to_text(root), 0)
    extra["existed"] = True  # a rollback must not undo what it did not create
    s.doing = "reading storage pool %s" % name
    current = ET.fromstring(s.xml_desc(pool, "VIR_STORAGE_XML_INACTIVE"))
    libvirt_xml.keep_uuid(root, current)
    diffs = libvirt_xml.differences(root, current)
    if not diffs:
        return pool
    active = bool(pool.isActive())
    extra["differences"] = diffs
    extra["restart_needed"] = active
    note = " (takes effect when the pool restarts)" if active else ""
    changes.append("redefined (%s)%s" % (libvirt_xml.summary(diffs), note))
    if s.check:
        return pool
    s.doing = "redefining storage pool %s" % name
    return s.conn.storagePoolDefineXML(libvirt_xml.to_text(root), 0)


def _build(s: Session, pool: Any, changes: List[str]) -> None:
    changes.append("built")
    if not s.check:
        s.doing = "building storage pool %s" % pool.name()
        pool.build(0)


def _ensure_autostart(s: Session, pool: Any, wanted: bool, changes: List[str]) -> None:
    current = bool(pool.autostart()) if pool is not None else False
    if current != wanted:
        changes.append("autostart %s" % ("on" if wanted else "off"))
        if not s.check:
            s.doing = "setting autostart of storage pool %s" % pool.name()
            pool.setAutostart(1 if wanted else 0)


def _ensure_active(s: Session, pool: Any, wanted: bool, build: bool, changes: List[str]) -> None:
    active = bool(pool.isActive()) if pool is not None else False
    if active == wanted:
        return
    if wanted and build:
        _build(s, pool, changes)
    changes.append("started" if wanted else "stopped")
    if s.check:
        return
    s.doing = "%s storage pool %s" % ("starting" if wanted else "stopping", pool.name())
    if wanted:
        pool.create(0)
    else:
        pool.destroy()


def _remove(s: Session, pool: Any, changes: List[str]) -> None:
    name = pool.name()
    persistent = bool(pool.isPersistent())
    if pool.isActive():
        changes.append("stopped")
        if not s.check:
            s.doing = "stopping storage pool %s" % name
            pool.destroy()
    if persistent:
        changes.append("undefined")
        if not s.check:
            s.doing = "undefining storage pool %s" % name
            pool.undefine()
