"""XML helpers of the libvirt actions: parsing, sizes with units, and the comparison that
decides whether a definition must change.

``differences(want, have)`` compares only what the wanted XML specifies: every attribute
and text it gives must be in the current (inactive) XML, children matched by tag in order
(disks by target device). libvirt adds elements on define (UUID, MACs, PCI addresses,
controllers, machine type, ...): those are not differences, so a second run with the same
XML is ``ok``. Sizes compare by value (``256 MiB`` = ``262144 KiB``). Removals count where
libvirt never adds on its own: user devices (disks, interfaces, serials, ...) and the
kernel boot elements of ``<os>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.errors import StepFailed

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional, Tuple

    Element = ET.Element

# libvirt's units (virScaleInteger): K/KiB binary, KB decimal; bare numbers of memory are KiB.
_UNITS = {
    "": 1, "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
    "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3,
    "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4,
    "p": 1024 ** 5, "pib": 1024 ** 5, "pb": 1000 ** 5,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
MEMORY_TAGS = frozenset(("memory", "currentMemory", "maxMemory"))
# Devices libvirt never adds by itself: fewer of them in the wanted XML is a change.
USER_DEVICES = frozenset((
    "disk", "interface", "filesystem", "hostdev", "graphics", "serial", "parallel",
    "channel", "redirdev", "smartcard", "rng", "tpm", "watchdog", "sound", "shmem", "vsock",
))
OS_BOOT = frozenset(("kernel", "initrd", "cmdline", "dtb"))
MAX_REPORTED = 8


def parse_size(value: Any, default_unit: str = "") -> int:
    """Bytes from an int or text like ``"1G"``, ``"512 MiB"``, ``"1073741824"``."""
    if isinstance(value, bool):
        raise ValueError("not a size: %r" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative: %r" % value)
        return value * _UNITS[default_unit.lower()]
    match = _SIZE.match(str(value))
    unit = (match.group(2) if match else "").lower() or default_unit.lower()
    if not match or unit not in _UNITS:
        raise ValueError("not a size: %r (use bytes, or a number with K, M, G, T, KiB, MB, ...)" % (value,))
    return int(float(match.group(1)) * _UNITS[unit])


def parse(text: str, root_tag: str, field: str = "xml") -> Element:
    """Parse ``text``; ``ProtocolError`` naming ``field`` when it is not the XML expected."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise protocol.ProtocolError("not well-formed XML: %s" % exc, field) from None
    if root.tag != root_tag:
        raise protocol.ProtocolError("expected a <%s> document, got <%s>" % (root_tag, root.tag), field)
    return root


def check_name(root: Element, name: str, what: str) -> None:
    """The XML's ``<name>`` must be the step's ``name`` (added when the XML has none)."""
    node = root.find("name")
    if node is None:
        node = ET.Element("name")
        root.insert(0, node)
        node.text = name
    elif (node.text or "").strip() != name:
        raise StepFailed("the xml defines %s %r, but the step's name is %r"
                         % (what, (node.text or "").strip(), name))


def keep_uuid(root: Element, current: Element) -> None:
    """Use the existing definition's UUID when the wanted XML gives none."""
    uuid = current.findtext("uuid")
    if uuid and root.find("uuid") is None:
        node = ET.Element("uuid")
        node.text = uuid
        name = root.find("name")
        root.insert(list(root).index(name) + 1 if name is not None else 0, node)


def to_text(root: Element) -> str:
    return ET.tostring(root, encoding="unicode")


def canonical(text: str) -> str:
    """XML text in a form where equal documents are equal strings."""
    return ET.canonicalize(xml_data=text, strip_text=True)


# --- comparison -------------------------------------------------------------------------


def _size_of(node: Element, default_unit: str) -> Optional[int]:
    text = (node.text or "").strip()
    try:
        return parse_size(text + (node.get("unit") or ""), default_unit) if text else None
    except ValueError:
        return None


def _show_size(node: Optional[Element], tag: str) -> str:
    if node is None:
        return "(none)"
    size = _size_of(node, "KiB" if tag in MEMORY_TAGS else "")
    if size is None:
        return (node.text or "").strip() or "(none)"
    if tag in MEMORY_TAGS:
        return str(size // 1024)
    return str(size)


def _pair_key(node: Element) -> Optional[str]:
    if node.tag == "disk":
        target = node.find("target")
        return target.get("dev") if target is not None else None
    return None


def _pairs(want: List[Element], have: List[Element]) -> List[Tuple[Element, Optional[Element]]]:
    """Match wanted children to current ones: by key where there is one, else in order."""
    used: List[int] = []
    out: List[Tuple[Element, Optional[Element]]] = []
    for node in want:
        key = _pair_key(node)
        match = None
        if key is not None:
            for i, other in enumerate(have):
                if i not in used and _pair_key(other) == key:
                    match = i
                    break
        if match is None:
            match = next((i for i in range(len(have)) if i not in used), None)
        if match is not None:
            used.append(match)
        out.append((node, have[match] if match is not None else None))
    return out


def _label(path: str, tag: str, index: int, count: int) -> str:
    name = "%s[%d]" % (tag, index + 1) if count > 1 else tag
    return "%s/%s" % (path, name) if path else name


def _compare_text(want: Element, have: Element, path: str, out: List[str]) -> None:
    text = (want.text or "").strip()
    if not text:
        return
    if want.get("unit") is not None or want.tag in MEMORY_TAGS:
        unit = "KiB" if want.tag in MEMORY_TAGS else ""
        if _size_of(want, unit) != _size_of(have, unit):
            suffix = " KiB" if want.tag in MEMORY_TAGS else " bytes"
            out.append("%s %s -> %s%s" % (path, _show_size(have, want.tag), _show_size(want, want.tag), suffix))
        return
    old = (have.text or "").strip()
    if old != text:
        out.append("%s %s -> %s" % (path, old or "(none)", text))


def _compare(want: Element, have: Element, path: str, out: List[str]) -> None:
    for key, value in want.attrib.items():
        if key == "unit":
            continue
        old = have.get(key)
        if old != value:
            where = "%s/@%s" % (path, key) if path else key
            out.append("%s %s -> %s" % (where, old if old is not None else "(none)", value))
    _compare_text(want, have, path, out)
    tags: List[str] = []
    for child in want:
        if child.tag not in tags:
            tags.append(child.tag)
    for tag in tags:
        wanted = want.findall(tag)
        current = have.findall(tag)
        count = max(len(wanted), len(current))
        for index, (node, other) in enumerate(_pairs(wanted, current)):
            label = _label(path, tag, index, count)
            if other is None:
                out.append("%s added" % label)
            else:
                _compare(node, other, label, out)
    _removed(want, have, path, out)


def _removed(want: Element, have: Element, path: str, out: List[str]) -> None:
    if path == "devices":
        watched = USER_DEVICES
    elif path == "os":
        watched = OS_BOOT
    else:
        return
    for tag in sorted({child.tag for child in have if child.tag in watched}):
        extra = len(have.findall(tag)) - len(want.findall(tag))
        if extra > 0:
            out.append("%s/%s removed%s" % (path, tag, " (%d)" % extra if extra > 1 else ""))


def differences(want: Element, have: Element) -> List[str]:
    """What in ``want`` is not so in ``have`` (``path old -> new``), in document order."""
    out: List[str] = []
    _compare(want, have, "", out)
    return out


def summary(diffs: List[str]) -> str:
    shown = ", ".join(diffs[:MAX_REPORTED])
    if len(diffs) > MAX_REPORTED:
        shown += ", and %d more" % (len(diffs) - MAX_REPORTED)
    return shown


def unified_diff(old: str, new: str, name: str) -> str:
    import difflib

    return "".join(difflib.unified_diff(
        old.splitlines(True), new.splitlines(True), "%s (before)" % name, "%s (after)" % name))


def _source_key(iface: Element) -> Tuple[Optional[str], Optional[str]]:
    src = iface.find("source")
    if src is None:
        return iface.get("type"), None
    return iface.get("type"), src.get("network") or src.get("bridge") or src.get("dev")


def keep_macs(root: Element, current: Element) -> List[str]:
    """Give the wanted interfaces without ``<mac>`` the MACs of the current ones.

    An interface keeps the MAC of the current interface on the same network (or bridge), in
    order; the others take the remaining current interfaces in order. Returns the MACs kept.
    """
    want = root.findall("devices/interface")
    have = current.findall("devices/interface")
    match: Dict[int, int] = {}
    for i, node in enumerate(want):
        for j, other in enumerate(have):
            if j not in match.values() and _source_key(other) == _source_key(node):
                match[i] = j
                break
    free = [j for j in range(len(have)) if j not in match.values()]
    for i in range(len(want)):
        if i not in match and free:
            match[i] = free.pop(0)
    kept = []
    for i, j in sorted(match.items()):
        mac = have[j].find("mac")
        if want[i].find("mac") is None and mac is not None and mac.get("address"):
            want[i].insert(0, ET.Element("mac", {"address": mac.get("address") or ""}))
            kept.append(mac.get("address") or "")
    return kept


def file_sources(root: Element) -> List[str]:
    """The serial logs: ``<log file=...>`` of the serial ports and consoles (a pty serial
    that ``hostplane console`` attaches to, logged all the same), then the paths of
    ``type='file'`` ones (domains defined before the pty serial)."""
    paths: List[str] = []
    for tag in ("serial", "console"):
        for node in root.findall("devices/" + tag):
            log, src = node.find("log"), node.find("source")
            path = log.get("file") if log is not None else None
            if path is None and src is not None and node.get("type") == "file":
                path = src.get("path")
            if path and path not in paths:
                paths.append(path)
    return paths
