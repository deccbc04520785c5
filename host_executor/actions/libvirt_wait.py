"""The libvirt side of ``wait``: a domain's state, or a pattern in a domain's serial log.

- ``domain`` + ``state``: until the domain is in that state (``running``, ``paused``,
  ``shutoff``, ``crashed``, ``pmsuspended``; ``defined``: it exists; ``absent``: it does
  not). ``domain`` alone waits for ``running``.
- ``pattern`` with ``serial_log`` (a file) or ``domain`` (its ``<serial type='file'>``
  source path, read from the domain's XML): until the regex appears in the log. With a
  ``domain``, the wait fails early when the domain stops before the pattern appears. The
  domain action empties the log at each start, so an old marker never satisfies the wait.
- ``serial_log`` without ``domain`` needs no libvirt at all.
- ``domain`` + ``address: true``: until the domain has an IPv4 address in its network's
  DHCP leases (``data.addresses``: interface, mac, addr, prefix, type; ``data.ip``: the
  first IPv4).

``timeout`` (default 60 s, never past the step's timeout) and ``interval`` (default
0.25 s) as for every wait; check mode tests once (met: ``ok``, else ``skipped``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from host_executor import protocol
from host_executor.actions import libvirt_xml
from host_executor.actions.libvirt_common import run_libvirt, state_name
from host_executor.actions.wait import _path_probe, poll
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Callable, Dict, Optional, Tuple

    from host_executor.actions.libvirt_common import Session
    from host_executor.step import StepContext

    Probe = Callable[[float], Tuple[bool, Dict[str, Any]]]

DEFAULT_INTERVAL = 0.25
STATES = ("running", "paused", "shutoff", "crashed", "pmsuspended", "defined", "absent")
_RUNNING = ("running", "blocked")
_STOPPED = ("shutoff", "crashed", "absent")


def check_args(args: Dict[str, Any]) -> None:
    state = args.get("state")
    if state is not None and args.get("domain") is None:
        raise protocol.ProtocolError("state needs domain", "state")
    if args.get("address") and args.get("domain") is None:
        raise protocol.ProtocolError("address needs domain", "address")
    if state is not None and state not in STATES:
        raise protocol.ProtocolError("expected one of %s, got %r" % (", ".join(STATES), state), "state")


def run_libvirt_wait(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    if args.get("domain") is None:
        return _wait(_log_probe(args["serial_log"], args.get("pattern")), _describe(args, None), args, ctx)
    return run_libvirt(lambda s, a: _domain_wait(s, a, ctx), args, ctx)


def _describe(args: Dict[str, Any], log: Optional[str]) -> str:
    parts = []
    plain = args.get("pattern") is None and not args.get("address")
    if args.get("domain") is not None and (args.get("state") or plain):
        parts.append("domain %s %s" % (args["domain"], args.get("state") or "running"))
    if args.get("address"):
        parts.append("an IPv4 address of domain %s in its DHCP leases" % args["domain"])
    if args.get("pattern") is not None:
        parts.append("pattern %r in %s" % (args["pattern"], log or args.get("serial_log")))
    elif args.get("serial_log") is not None and args.get("domain") is None:
        parts.append("serial log %s" % args["serial_log"])
    return " and ".join(parts)


def _log_probe(path: str, pattern: Optional[str]) -> Probe:
    probe = _path_probe(path, pattern)

    def run(budget: float) -> Tuple[bool, Dict[str, Any]]:
        met, info = probe(budget)
        info["serial_log"] = path
        return met, info

    return run


def _domain_state(s: Session, name: str) -> str:
    dom = s.lookup(s.conn.lookupByName, name, "VIR_ERR_NO_DOMAIN")
    return "absent" if dom is None else state_name(dom.state()[0])


def _serial_log(s: Session, name: str) -> str:
    dom = s.lookup(s.conn.lookupByName, name, "VIR_ERR_NO_DOMAIN")
    if dom is None:
        raise StepFailed("domain %s is not defined (no serial log to search)" % name)
    logs = libvirt_xml.file_sources(ET.fromstring(dom.XMLDesc(0)))
    if not logs:
        raise StepFailed("domain %s has no serial log file "
                         "(<serial type='pty'><log file=...>)" % name)
    return logs[0]


def _domain_wait(s: Session, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    name = args["domain"]
    pattern = args.get("pattern")
    state = args.get("state") or (None if pattern is not None or args.get("address") else "running")
    log = args.get("serial_log")
    if pattern is not None and log is None:
        s.doing = "reading the XML of domain %s" % name
        log = _serial_log(s, name)
    log_probe = _log_probe(log, pattern) if pattern is not None and log is not None else None

    def probe(budget: float) -> Tuple[bool, Dict[str, Any]]:
        s.doing = "reading the state of domain %s" % name
        current = _domain_state(s, name)
        info: Dict[str, Any] = {"domain_state": current}
        met = True
        if state is not None:
            met = current == state or (state == "running" and current in _RUNNING) or \
                (state == "defined" and current != "absent")
        if log_probe is not None:
            found, more = log_probe(budget)
            info.update(more)
            met = met and found
            if not found and state in (None, "running") and current in _STOPPED:
                info["stopped"] = True
        if args.get("address") and met:
            s.doing = "reading the DHCP leases of domain %s" % name
            info.update(addresses(s, name))
            met = info.get("ip") is not None
            if not met and current in _STOPPED:
                info["stopped"] = True
        return met, info

    return _wait(probe, _describe(args, log), args, ctx)


def addresses(s: Session, name: str) -> Dict[str, Any]:
    """The domain's addresses from its networks' DHCP leases (none while it is off)."""
    dom = s.lookup(s.conn.lookupByName, name, "VIR_ERR_NO_DOMAIN")
    if dom is None or not dom.isActive():
        return {"domain": name, "addresses": [], "ip": None}
    source = getattr(s.lv, "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE", 0)
    found = []
    for iface, info in sorted((dom.interfaceAddresses(source) or {}).items()):
        for addr in info.get("addrs") or []:
            kind = "ipv4" if addr.get("type") == getattr(s.lv, "VIR_IP_ADDR_TYPE_IPV4", 0) else "ipv6"
            found.append({"interface": iface, "mac": info.get("hwaddr"), "addr": addr.get("addr"),
                          "prefix": addr.get("prefix"), "type": kind})
    ipv4 = [a["addr"] for a in found if a["type"] == "ipv4"]
    return {"domain": name, "addresses": found, "ip": ipv4[0] if ipv4 else None}


def _wait(probe: Probe, what: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    def stopped(info: Dict[str, Any]) -> Optional[str]:
        if info.get("stopped"):
            return "domain %s is %s: it stopped before %s" % (args["domain"], info["domain_state"], what)
        return None

    def ready(info: Dict[str, Any]) -> str:
        got = "address %s" % info["ip"] if info.get("ip") else "ready"
        return "%s: %s after %.1f s" % (what, got, info["elapsed"])

    return poll(probe, what, args, ctx, ready, stopped)
