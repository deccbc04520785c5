"""``--watch-domains``: the host-side event dispatcher (libvirt domain lifecycle events).

    python3 executor.pyz --watch-domains [URI] [--heartbeat SECONDS] [--watch-stdin]

Writes JSON Lines on stdout until the controller goes away (stdout closed — noticed at the
next heartbeat at the latest —, SIGHUP/SIGTERM, or stdin at EOF with ``--watch-stdin``),
then exits 0:

- ``hello`` (as for a request, ``id`` is ``"watch"``);
- ``domain_list``: every domain with its state, vCPUs and memory, first and after every
  reconnect, so a controller that missed events while away can reconcile;
- ``domain_event``: ``domain``, ``uuid``, ``kind`` (defined, undefined, started,
  suspended, resumed, stopped, shutdown, pmsuspended, crashed), ``detail`` (e.g. booted,
  destroyed, shutdown, crashed, failed), ``state`` after the event, ``time``;
- ``heartbeat`` every ``--heartbeat`` seconds (default 5) with the domain count.

Only reads from libvirt. Without the bindings: an ``error`` event naming
python3-libvirt, exit 2. A lost libvirtd connection is retried with backoff.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from host_executor import __version__, protocol
from host_executor.emitter import write_stdout
from host_executor.identity import executor_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

KINDS = ("defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown",
         "pmsuspended", "crashed")
DETAILS = {
    "defined": ("added", "updated", "renamed", "from_snapshot"),
    "undefined": ("removed", "renamed"),
    "started": ("booted", "migrated", "restored", "from_snapshot", "wakeup"),
    "suspended": ("paused", "migrated", "ioerror", "watchdog", "restored", "from_snapshot",
                  "api_error", "postcopy", "postcopy_failed"),
    "resumed": ("unpaused", "migrated", "from_snapshot", "postcopy"),
    "stopped": ("shutdown", "destroyed", "crashed", "migrated", "saved", "failed",
                "from_snapshot"),
    "shutdown": ("finished", "guest", "host"),
    "pmsuspended": ("memory", "disk"),
    "crashed": ("panicked", "crashloaded"),
}
STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed",
          "pmsuspended")


class _Watcher:
    def __init__(self, lv: Any, uri: str, heartbeat: float) -> None:
        self.lv = lv
        self.uri = uri
        self.heartbeat = heartbeat
        self.stop = threading.Event()
        self.conn: Any = None

    def emit(self, event: Dict[str, Any]) -> None:
        if not write_stdout(protocol.encode_event(event)):
            self.stop.set()  # the controller is gone

    def _domain_info(self, dom: Any) -> Dict[str, Any]:
        state, _max_mem, mem_kib, vcpus, _cpu = dom.info()
        return {"name": dom.name(), "uuid": dom.UUIDString(), "state": _state(state),
                "vcpus": vcpus, "memory_mib": mem_kib // 1024, "active": bool(dom.isActive())}

    def snapshot(self) -> None:
        domains = [self._domain_info(d) for d in self.conn.listAllDomains(0)]
        self.emit({"event": "domain_list", "domains": domains, "time": time.time()})

    def on_lifecycle(self, _conn: Any, dom: Any, kind: int, detail: int, _opaque: Any) -> None:
        name = KINDS[kind] if 0 <= kind < len(KINDS) else str(kind)
        details = DETAILS.get(name, ())
        try:
            state = _state(dom.state()[0])
        except self.lv.libvirtError:
            state = "absent"  # undefined: the domain is gone
        self.emit({"event": "domain_event", "domain": dom.name(), "uuid": dom.UUIDString(),
                   "kind": name, "detail": details[detail] if 0 <= detail < len(details)
                   else str(detail), "state": state, "time": time.time()})

    def on_heartbeat(self, _timer: int, _opaque: Any) -> None:
        if self.stop.is_set():
            return
        try:
            count = self.conn.numOfDomains() + self.conn.numOfDefinedDomains()
        except self.lv.libvirtError:
            count = None
        self.emit({"event": "heartbeat", "domains": count, "time": time.time()})

    def connect(self) -> None:
        try:
            self.conn = self.lv.open(self.uri)
        except self.lv.libvirtError:
            # Users outside the libvirt group may still read (polkit permitting).
            self.conn = self.lv.openReadOnly(self.uri)
        self.conn.domainEventRegisterAny(
            None, self.lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self.on_lifecycle, None)
        self.snapshot()

    def run(self) -> None:
        self.lv.virEventAddTimeout(int(self.heartbeat * 1000), self.on_heartbeat, None)
        delay = 1.0
        while not self.stop.is_set():
            try:
                if self.conn is None or not self.conn.isAlive():
                    self.connect()
                    delay = 1.0
                self.lv.virEventRunDefaultImpl()
            except self.lv.libvirtError as exc:
                self.conn = None
                self.emit({"event": "error", "code": "libvirt", "exit": 0, "id": "watch",
                           "message": "libvirt connection lost (%s); retrying in %gs"
                           % (exc.get_error_message(), delay), "time": time.time()})
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)


def _state(code: int) -> str:
    return STATES[code] if 0 <= code < len(STATES) else str(code)


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


def _parse(args: List[str]) -> Optional[Tuple[str, float, bool]]:
    uri, heartbeat, stdin = "qemu:///system", 5.0, False
    rest = list(args)
    while rest:
        word = rest.pop(0)
        if word == "--watch-stdin":
            stdin = True
        elif word == "--heartbeat" and rest:
            try:
                heartbeat = max(0.2, float(rest.pop(0)))
            except ValueError:
                return None
        elif not word.startswith("-"):
            uri = word
        else:
            return None
    return uri, heartbeat, stdin


def watch_domains(args: List[str]) -> int:
    parsed = _parse(args)
    if parsed is None:
        return _fail("usage", "usage: --watch-domains [URI] [--heartbeat SECONDS] [--watch-stdin]")
    uri, heartbeat, stdin = parsed
    from host_executor import site_packages

    site_packages.ensure()  # the launcher's python3 -S has no site directories
    try:
        import libvirt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _fail("no_libvirt", "the libvirt Python bindings are missing: install "
                     "python3-libvirt on this host")
    write_stdout(protocol.encode_event({
        "event": "hello", "protocol": protocol.PROTOCOL_VERSION, "digest": executor_digest(),
        "version": __version__, "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3], "id": "watch", "uri": uri}))
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    libvirt.virEventRegisterDefaultImpl()
    watcher = _Watcher(libvirt, uri, heartbeat)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: watcher.stop.set())
    if stdin:
        threading.Thread(target=_watch_stdin, args=(watcher.stop,), daemon=True).start()
    watcher.run()
    return protocol.EXIT_OK


def _fail(code: str, message: str) -> int:
    write_stdout(protocol.encode_event({"event": "error", "code": code, "message": message,
                                        "exit": protocol.EXIT_BAD_REQUEST, "id": "watch"}))
    return protocol.EXIT_BAD_REQUEST
