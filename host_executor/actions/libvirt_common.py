"""What the libvirt actions share: the bindings, the connection, errors, KVM detection.

- The ``libvirt`` bindings (Debian/Ubuntu ``python3-libvirt``) are imported lazily, on the
  first libvirt step only; a host without them fails that step with a message naming the
  package, never with a traceback.
- ``run_libvirt(body, args, ctx)`` runs ``body(session)`` on the connection of
  ``args["uri"]`` (default ``$LIBVIRT_DEFAULT_URI``, else ``qemu:///system``), opened
  once per executor run and shared by its steps.
  A ``libvirtError`` becomes the step's error ``libvirt error <code> (<NAME>): <message>``,
  with what was being done and ``data.libvirt_error = {code, name, domain, message}``.
- ``kvm_status()`` tells whether KVM is *usable*, not merely present: ``/dev/kvm`` opens
  read-write, ``KVM_GET_API_VERSION`` answers 12, ``KVM_CREATE_VM`` works, and on x86 the
  CPU has vmx or svm. ``choose_domain_type`` adds what libvirt itself offers.
"""

from __future__ import annotations

import os

from host_executor.errors import StepFailed

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from host_executor.step import StepContext, StepResult

DEFAULT_URI = "qemu:///system"
PACKAGE = "python3-libvirt"
MISSING_REASON = "python3-libvirt is not installed"
KVM_DEVICE = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12

# virDomainState
DOMAIN_STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff",
                 "crashed", "pmsuspended")

_bindings: Any = None


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt's default error handler prints every error on stderr: errors are ours to report."""


def bindings() -> Any:
    """The ``libvirt`` module; ``StepFailed`` naming python3-libvirt when it is missing."""
    global _bindings
    if _bindings is None:
        from host_executor import site_packages

        site_packages.ensure()  # the launcher's python3 -S has no site directories
        try:
            import libvirt  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise StepFailed(
                "the libvirt Python bindings are not installed on this host: install %s "
                "(import libvirt failed: %s)" % (PACKAGE, exc),
                data={"missing": PACKAGE},
            ) from None
        libvirt.registerErrorHandler(_quiet, None)
        _bindings = libvirt
    return _bindings


def default_uri() -> str:
    return os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def error_name(lv: Any, code: int) -> str:
    for name in dir(lv):
        if name.startswith("VIR_ERR_") and getattr(lv, name) == code and name != "VIR_ERR_OK":
            return name
    return "VIR_ERR_%d" % code


def libvirt_failure(lv: Any, exc: Any, doing: str = "") -> StepFailed:
    """A ``libvirtError`` as the step's error: libvirt's own code and message."""
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    name = error_name(lv, code) if code is not None else "VIR_ERR_UNKNOWN"
    text = "libvirt error %s (%s): %s" % (code, name, message)
    if doing:
        text += " (while %s)" % doing
    info = {"code": code, "name": name, "domain": exc.get_error_domain(), "message": message}
    return StepFailed(text, data={"libvirt_error": info})


def error_code(exc: Any) -> Optional[int]:
    code: Optional[int] = exc.get_error_code()
    return code


class Session:
    """One libvirt step's connection and context; ``doing`` names the current operation."""

    __slots__ = ("conn", "ctx", "doing", "lv", "uri")

    def __init__(self, lv: Any, conn: Any, uri: str, ctx: StepContext) -> None:
        self.lv = lv
        self.conn = conn
        self.uri = uri
        self.ctx = ctx
        self.doing = ""

    @property
    def check(self) -> bool:
        return self.ctx.check

    def is_error(self, exc: Any, *names: str) -> bool:
        """Whether ``exc`` carries one of the ``VIR_ERR_*`` codes named."""
        code = error_code(exc)
        return any(getattr(self.lv, name, None) == code for name in names)

    def lookup(self, fn: Callable[[str], Any], name: str, missing: str) -> Any:
        """``fn(name)``, or None when libvirt says it does not exist (``missing`` code name)."""
        try:
            return fn(name)
        except self.lv.libvirtError as exc:
            if self.is_error(exc, missing):
                return None
            raise

    def xml_desc(self, obj: Any, flag_name: str) -> str:
        """``obj.XMLDesc(flag)``, falling back to no flag where a driver refuses it."""
        flag = getattr(self.lv, flag_name, 0)
        try:
            text: str = obj.XMLDesc(flag)
            return text
        except self.lv.libvirtError as exc:
            if not flag or not self.is_error(exc, "VIR_ERR_INVALID_ARG", "VIR_ERR_NO_SUPPORT"):
                raise
        text = obj.XMLDesc(0)
        return text

    def wait(self, seconds: float, what: str) -> None:
        if self.ctx.cancel.wait(seconds):
            raise StepFailed("interrupted: %s (while %s)" % (self.ctx.cancel.reason, what))


_connections: Dict[str, Any] = {}


def connection(lv: Any, uri: str) -> Any:
    """The open connection to ``uri``, shared by the steps of this executor run.

    One connection per URI per run (reconnecting when it died): cheaper than a connection
    per step, and ``test:///default`` keeps its state across the steps of one request.
    """
    conn = _connections.get(uri)
    if conn is not None:
        try:
            if conn.isAlive():
                return conn
        except lv.libvirtError:
            pass
    try:
        conn = lv.open(uri)
    except lv.libvirtError as exc:
        raise libvirt_failure(lv, exc, "connecting to %s" % uri) from None
    _connections[uri] = conn
    return conn


def run_libvirt(body: Callable[[Session, Dict[str, Any]], StepResult], args: Dict[str, Any],
                ctx: StepContext) -> StepResult:
    """Run ``body`` with an open connection; libvirt errors become the step's error."""
    lv = bindings()
    uri = args.get("uri") or default_uri()
    session = Session(lv, connection(lv, uri), uri, ctx)
    try:
        return body(session, args)
    except lv.libvirtError as exc:
        raise libvirt_failure(lv, exc, session.doing) from None


# --- KVM --------------------------------------------------------------------------------


def _cpu_has_virtualization() -> Optional[bool]:
    """vmx/svm in /proc/cpuinfo on x86; None where the question does not apply or can't be read."""
    if os.uname().machine not in ("x86_64", "i686", "i386", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = value.split()
            return "vmx" in flags or "svm" in flags
    return None


def kvm_status() -> Dict[str, Any]:
    """Whether this host can run KVM guests, with the reason when it cannot."""
    info: Dict[str, Any] = {"present": os.path.exists(KVM_DEVICE), "usable": False,
                            "api_version": None, "reason": ""}
    if not info["present"]:
        info["reason"] = "%s does not exist" % KVM_DEVICE
        return info
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        info["reason"] = "%s does not open read-write: %s" % (KVM_DEVICE, exc.strerror)
        return info
    try:
        import fcntl

        info["api_version"] = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        if info["api_version"] != KVM_API_VERSION:
            info["reason"] = "KVM_GET_API_VERSION answered %s, not %d" % (info["api_version"], KVM_API_VERSION)
            return info
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as exc:
        info["reason"] = "KVM ioctl failed on %s: %s" % (KVM_DEVICE, exc.strerror)
        return info
    finally:
        os.close(fd)
    virt = _cpu_has_virtualization()
    info["cpu_virtualization"] = virt
    if virt is False:
        info["reason"] = "the CPU has no vmx or svm flag (no hardware virtualization)"
        return info
    info["usable"] = True
    info["reason"] = "%s answers API version %d" % (KVM_DEVICE, KVM_API_VERSION)
    return info


def guest_domain_types(caps_xml: str, arch: Optional[str]) -> List[str]:
    """The domain types libvirt's capabilities offer for hvm guests of ``arch`` (any arch if none match)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(caps_xml)
    by_arch: Dict[str, List[str]] = {}
    for guest in root.findall("guest"):
        if (guest.findtext("os_type") or "hvm") != "hvm":
            continue
        for node in guest.findall("arch"):
            types = by_arch.setdefault(node.get("name") or "", [])
            for dom in node.findall("domain"):
                if dom.get("type") and dom.get("type") not in types:
                    types.append(dom.get("type") or "")
    if arch and arch in by_arch:
        return by_arch[arch]
    merged: List[str] = []
    for types in by_arch.values():
        merged.extend(t for t in types if t not in merged)
    return merged


def libvirt_kvm(session: Session, arch: Optional[str]) -> Tuple[Optional[bool], str]:
    """Whether libvirt's domain capabilities accept kvm (None: the driver can't say)."""
    try:
        session.conn.getDomainCapabilities(None, arch, None, "kvm", 0)
    except session.lv.libvirtError as exc:
        if session.is_error(exc, "VIR_ERR_NO_SUPPORT"):
            return None, "the %s driver has no domain capabilities" % session.conn.getType()
        return False, "libvirt refuses kvm: %s" % (exc.get_error_message() or exc)
    return True, "libvirt's domain capabilities offer kvm"


def choose_domain_type(session: Session, arch: Optional[str] = None) -> Tuple[str, str]:
    """``kvm`` where KVM is usable and libvirt offers it, else ``qemu`` (TCG); with the reason.

    A driver that offers neither (the test driver) gets its own first type.
    """
    offered = guest_domain_types(session.conn.getCapabilities(), arch)
    kvm = kvm_status()
    if "kvm" in offered and kvm["usable"]:
        ok, why = libvirt_kvm(session, arch)
        if ok is not False:
            return "kvm", "KVM is usable: %s; %s" % (kvm["reason"], why)
        return "qemu", "KVM is not usable: %s" % why
    if "qemu" in offered or not offered:
        why = kvm["reason"] if not kvm["usable"] else "libvirt offers no kvm domain type"
        return "qemu", "KVM is not usable: %s" % why
    return offered[0], "the %s driver offers only %s" % (session.conn.getType(), ", ".join(offered))


def domain_missing(s: Session, name: str, key: str = "name") -> StepResult:
    """A step on a domain that is not defined: in check mode an earlier step would have
    defined it (``skipped``), else the step fails."""
    if not s.check:
        raise StepFailed("domain %s is not defined" % name, data={key: name})
    from host_executor.step import StepResult

    return StepResult("skipped", msg="domain %s is not defined yet (check mode: earlier steps "
                      "did not really run)" % name, data={key: name, "exists": False})


def state_name(code: int) -> str:
    return DOMAIN_STATES[code] if 0 <= code < len(DOMAIN_STATES) else "unknown"
