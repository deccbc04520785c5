"""``libvirt_volume``: a storage volume present (blank, an overlay, or a clone) or absent.

- ``capacity`` in bytes, or text with a unit (``"1G"``, ``"512M"``, ``"10 GiB"``; K/M/G/T
  are binary as in qemu-img, KB/MB/GB decimal as in libvirt).
- ``backing``: the path of an image the volume is a qcow2 overlay on (symlinks resolved:
  the overlay records the file itself; ``backing_format`` default: read from the image's
  header, and recorded in the overlay explicitly). The overlay is at least as large as its backing
  image: a smaller ``capacity`` is raised to the backing size, and the message says so.
- ``clone_from``: a volume of the same pool (by name) or any pool volume (by path) whose
  content the new volume copies; ``capacity`` defaults to (and is at least) its size.
- ``format``: ``qcow2`` or ``raw`` (default: qcow2 with ``backing``, else raw). A qcow2
  volume is made as qcow2 v3 (compat 1.1), which QEMU can still grow once it has snapshots.
- An existing volume is checked, never recreated: a larger ``capacity`` grows it; a
  smaller one is refused (shrinking loses data); a different format or backing image is
  an error naming both.

``data`` is the resulting volume: pool, name, exists, path, format, capacity, allocation,
backing; ``changes`` lists what changed.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.actions import libvirt_xml
from host_executor.actions.libvirt_common import run_libvirt
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional, Tuple

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext

QCOW2_MAGIC = b"QFI\xfb"
SECTOR = 512


def check_args(args: Dict[str, Any]) -> None:
    if args.get("capacity") is not None:
        try:
            libvirt_xml.parse_size(args["capacity"])
        except ValueError as exc:
            raise protocol.ProtocolError(str(exc), "capacity") from None
    if args.get("backing") is not None and args.get("clone_from") is not None:
        raise protocol.ProtocolError("give backing or clone_from, not both", "clone_from")
    if args.get("backing") is not None and not args["backing"].startswith("/"):
        raise protocol.ProtocolError("expected an absolute path", "backing")
    if args.get("backing") is not None and args.get("format") == "raw":
        raise protocol.ProtocolError("an overlay on a backing image is qcow2, not raw", "format")


def run_volume(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return run_libvirt(_run, args, ctx)


def _run(s: Session, args: Dict[str, Any]) -> StepResult:
    pool_name, name = args["pool"], args["name"]
    state = args.get("state") or "present"
    changes: List[str] = []
    notes: List[str] = []
    s.doing = "looking up storage pool %s" % pool_name
    pool = s.lookup(s.conn.storagePoolLookupByName, pool_name, "VIR_ERR_NO_STORAGE_POOL")
    if pool is None and state == "absent":
        return StepResult("ok", msg="volume %s/%s is absent (no such pool)" % (pool_name, name),
                          data={"pool": pool_name, "name": name, "exists": False, "changes": []})
    if (pool is None or not pool.isActive()) and s.check:
        # An earlier step (host_prepare) would have made the pool, had it really run.
        return StepResult("skipped", msg="storage pool %s is not %s yet (check mode: earlier steps "
                          "did not really run)" % (pool_name, "active" if pool else "defined"),
                          data={"pool": pool_name, "name": name, "exists": False, "changes": []})
    if pool is None:
        raise StepFailed("storage pool %s does not exist (create it first, e.g. with host_prepare)" % pool_name)
    if not pool.isActive():
        raise StepFailed("storage pool %s is not active" % pool_name)
    _refresh(s, pool)
    vol = s.lookup(pool.storageVolLookupByName, name, "VIR_ERR_NO_STORAGE_VOL")
    existed = vol is not None
    if state == "absent":
        if vol is not None:
            changes.append("deleted")
            if not s.check:
                s.doing = "deleting volume %s/%s" % (pool_name, name)
                vol.delete(0)
                vol = None
    elif vol is None:
        vol = _create(s, pool, args, changes, notes)
    else:
        _check_existing(s, vol, args, changes, notes)
    data = volume_data(s, vol, pool_name, name)
    data["changes"] = changes
    if existed and state != "absent":
        data["existed"] = True  # a rollback must not delete a volume it did not create
    tail = "".join(" (%s)" % n for n in notes)
    if changes:
        head = "volume %s/%s (check mode) would be: " % (pool_name, name) if s.check else \
            "volume %s/%s: " % (pool_name, name)
        return StepResult("changed", msg=head + ", ".join(changes) + tail, data=data)
    present = "present" if data["exists"] else "absent"
    return StepResult("ok", msg="volume %s/%s is %s%s" % (pool_name, name, present, tail), data=data)


def _refresh(s: Session, pool: Any) -> None:
    """See volumes made outside libvirt; a refresh refused (another job runs) is no error."""
    with contextlib.suppress(s.lv.libvirtError):
        pool.refresh(0)


def volume_data(s: Session, vol: Any, pool: str, name: str) -> Dict[str, Any]:
    if vol is None:
        return {"pool": pool, "name": name, "exists": False}
    root = ET.fromstring(vol.XMLDesc(0))
    info = vol.info()  # [type, capacity, allocation]
    return {
        "pool": pool, "name": name, "exists": True, "path": vol.path(),
        "format": _format(root.find("target")), "capacity": info[1], "allocation": info[2],
        "backing": _backing(root.find("backingStore")),
    }


def _format(parent: Optional[ET.Element]) -> Optional[str]:
    node = parent.find("format") if parent is not None else None
    return node.get("type") if node is not None else None


def _backing(store: Optional[ET.Element]) -> Optional[Dict[str, Any]]:
    if store is None or not store.findtext("path"):
        return None
    return {"path": store.findtext("path"), "format": _format(store)}


# --- sizes ------------------------------------------------------------------------------


def image_info(path: str) -> Tuple[str, int]:
    """(format, virtual size) of an image file: qcow2 from its header, else raw."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(32)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise StepFailed("backing image %s cannot be read: %s" % (path, exc.strerror or exc)) from None
    if header[:4] == QCOW2_MAGIC and len(header) >= 32:
        return "qcow2", int.from_bytes(header[24:32], "big")
    return "raw", size


def _source_size(s: Session, path: str) -> Tuple[str, int]:
    vol = s.lookup(s.conn.storageVolLookupByPath, path, "VIR_ERR_NO_STORAGE_VOL")
    if vol is not None:
        fmt = volume_data(s, vol, "", "").get("format") or "raw"
        return fmt, int(vol.info()[1])
    if not os.path.exists(path):
        raise StepFailed("backing image %s does not exist" % path)
    return image_info(path)


def _wanted_capacity(args: Dict[str, Any], floor: Optional[int], what: str,
                     notes: List[str]) -> int:
    given = args.get("capacity")
    if given is None:
        if floor is None:
            raise StepFailed("capacity is needed to create volume %s/%s" % (args["pool"], args["name"]))
        return floor
    wanted = libvirt_xml.parse_size(given)
    if floor is not None and wanted < floor:
        notes.append("capacity %d raised to the %s size %d" % (wanted, what, floor))
        return floor
    return wanted


# --- create / check ---------------------------------------------------------------------


def _volume_xml(name: str, capacity: int, fmt: str, backing: Optional[Tuple[str, str]]) -> str:
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(root, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type=fmt)
    if fmt == "qcow2":  # libvirt's default is v2 (0.10), which QEMU cannot grow once it has snapshots
        ET.SubElement(target, "compat").text = "1.1"
    if backing is not None:
        store = ET.SubElement(root, "backingStore")
        ET.SubElement(store, "path").text = backing[0]
        ET.SubElement(store, "format", type=backing[1])
    return ET.tostring(root, encoding="unicode")


def _clone_source(s: Session, pool: Any, source: str) -> Any:
    if source.startswith("/"):
        vol = s.lookup(s.conn.storageVolLookupByPath, source, "VIR_ERR_NO_STORAGE_VOL")
    else:
        vol = s.lookup(pool.storageVolLookupByName, source, "VIR_ERR_NO_STORAGE_VOL")
    if vol is None:
        raise StepFailed("clone_from: no storage volume %s" % source)
    return vol


def _create(s: Session, pool: Any, args: Dict[str, Any], changes: List[str], notes: List[str]) -> Any:
    name = args["name"]
    backing = args.get("backing")
    fmt = args.get("format") or ("qcow2" if backing else "raw")
    if args.get("clone_from"):
        src = _clone_source(s, pool, args["clone_from"])
        capacity = _wanted_capacity(args, int(src.info()[1]), "source", notes)
        changes.append("created (%s, %d bytes, clone of %s)" % (fmt, capacity, src.path()))
        if s.check:
            return None
        s.doing = "cloning volume %s into %s/%s" % (src.path(), args["pool"], name)
        return pool.createXMLFrom(_volume_xml(name, capacity, fmt, None), src, 0)
    store = None
    if backing:
        # The file itself, not a link to it: ``image push`` repoints a name's link to new
        # content, and an instance's disk must go on reading the content it was made on.
        backing = os.path.realpath(backing)
        detected, size = _source_size(s, backing)
        store = (backing, args.get("backing_format") or detected)
        capacity = _wanted_capacity(args, size, "backing image", notes)
        changes.append("created (qcow2 overlay on %s, %d bytes)" % (backing, capacity))
    else:
        capacity = _wanted_capacity(args, None, "", notes)
        changes.append("created (%s, %d bytes)" % (fmt, capacity))
    if s.check:
        return None
    s.doing = "creating volume %s/%s" % (args["pool"], name)
    return pool.createXML(_volume_xml(name, capacity, fmt, store), 0)


def _check_existing(s: Session, vol: Any, args: Dict[str, Any], changes: List[str],
                    notes: List[str]) -> None:
    where = "%s/%s" % (args["pool"], args["name"])
    current = volume_data(s, vol, args["pool"], args["name"])
    if args.get("format") and current["format"] and args["format"] != current["format"]:
        raise StepFailed("volume %s exists as %s, not %s (delete it to recreate it)"
                         % (where, current["format"], args["format"]))
    backing = args.get("backing")
    have = (current["backing"] or {}).get("path")
    if backing and (not have or os.path.realpath(have) != os.path.realpath(backing)):
        raise StepFailed("volume %s exists with backing image %s, not %s (delete it to recreate it)"
                         % (where, have or "(none)", backing))
    if args.get("capacity") is None:
        return
    floor = _source_size(s, backing)[1] if backing else None
    wanted = _wanted_capacity(args, floor, "backing image", notes)
    size = int(current["capacity"])
    if wanted <= size and size - wanted < SECTOR:
        return  # the same, up to qemu-img's rounding to whole sectors
    if wanted < size:
        raise StepFailed("volume %s is %d bytes: shrinking it to %d bytes is refused (it would lose data)"
                         % (where, size, wanted), data={"capacity": size, "requested": wanted})
    changes.append("grown from %d to %d bytes" % (size, wanted))
    if not s.check:
        s.doing = "resizing volume %s" % where
        vol.resize(wanted, 0)
