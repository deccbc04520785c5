"""``wait``: until a path exists, a TCP port accepts connections, or a regex appears in a
file (``pattern`` searched in the file at ``path``).

``timeout`` (default 60 s, and never past the step's own timeout) and ``interval``
(default 1 s) bound the wait; running out fails the step with a message naming what was
awaited. Waiting changes nothing, so success is ``ok``. In check mode the condition is
tested once: met is ``ok``, not met is ``skipped`` ("would wait for ..."), because earlier
steps did not really run.

``domain``/``serial_log`` are libvirt waits (a domain's state, a pattern in its serial
log): they run in ``libvirt_wait``, imported only for them (or ``LIBVIRT_WAIT`` if set).
"""

from __future__ import annotations

import os
import re
import time

from host_executor import protocol
from host_executor.errors import StepFailed
from host_executor.step import StepContext, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Callable, Dict, Optional, Tuple
    Probe = Callable[[float], Tuple[bool, Dict[str, Any]]]

DEFAULT_TIMEOUT = 60.0
DEFAULT_INTERVAL = 1.0
_READ_LIMIT = 16 * 1024 * 1024

#: Installed by the libvirt actions: ``LIBVIRT_WAIT(args, ctx) -> StepResult``.
LIBVIRT_WAIT: Optional[Callable[[Dict[str, Any], StepContext], StepResult]] = None


def check_args(args: Dict[str, Any]) -> None:
    libvirt = args.get("domain") is not None or args.get("serial_log") is not None
    if not libvirt and args.get("path") is None and args.get("port") is None:
        raise protocol.ProtocolError("wait needs path, port, domain or serial_log", "path")
    if libvirt:
        from host_executor.actions.libvirt_wait import check_args as check_libvirt_args

        check_libvirt_args(args)
    if args.get("pattern") is not None:
        if args.get("path") is None and not libvirt:
            raise protocol.ProtocolError("pattern needs path (the file to search)", "pattern")
        try:
            re.compile(args["pattern"])
        except (re.error, OverflowError, RecursionError) as exc:
            raise protocol.ProtocolError("not a valid regular expression: %s" % exc, "pattern") from None
    port = args.get("port")
    if port is not None and not 0 < port < 65536:
        raise protocol.ProtocolError("expected a TCP port (1-65535)", "port")
    for key in ("timeout", "interval"):
        if args.get(key) is not None and args[key] <= 0:
            raise protocol.ProtocolError("expected a positive number of seconds", key)


def _port_probe(host: str, port: int) -> Probe:
    import socket

    def probe(budget: float) -> Tuple[bool, Dict[str, Any]]:
        try:
            conn = socket.create_connection((host, port), timeout=max(0.1, min(budget, 5.0)))
        except OSError as exc:
            return False, {"last_error": str(exc)}
        conn.close()
        return True, {}

    return probe


def _path_probe(path: str, pattern: Optional[str]) -> Probe:
    regex = re.compile(pattern) if pattern is not None else None

    def probe(_budget: float) -> Tuple[bool, Dict[str, Any]]:
        # Only a missing file is worth waiting for: one we may not read (permissions, a
        # directory) stays unreadable, so say why now instead of "timed out" much later.
        try:
            if regex is None:
                os.stat(path)
                return True, {}
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - _READ_LIMIT))
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return False, {}
        except OSError as exc:
            raise StepFailed("cannot read %s: %s" % (path, exc.strerror or exc),
                             data={"path": path, "errno": exc.errno}) from None
        found = regex.search(text)
        return (True, {"match": found.group(0)[:1000]}) if found else (False, {})

    return probe


def _describe(args: Dict[str, Any]) -> str:
    if args.get("port") is not None:
        return "port %s:%d" % (args.get("host") or "127.0.0.1", args["port"])
    if args.get("pattern") is not None:
        return "pattern %r in %s" % (args["pattern"], args["path"])
    return "path %s" % args["path"]


def run_wait(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    if args.get("domain") is not None or args.get("serial_log") is not None:
        if LIBVIRT_WAIT is not None:
            return LIBVIRT_WAIT(args, ctx)
        from host_executor.actions.libvirt_wait import run_libvirt_wait

        return run_libvirt_wait(args, ctx)
    if args.get("port") is not None:
        probe = _port_probe(args.get("host") or "127.0.0.1", args["port"])
    else:
        probe = _path_probe(args["path"], args.get("pattern"))
    what = _describe(args)
    return poll(probe, what, args, ctx, lambda info: "%s is ready" % what)


def poll(probe: Probe, what: str,
         args: Dict[str, Any], ctx: StepContext,
         ready_msg: Callable[[Dict[str, Any]], str],
         give_up: Optional[Callable[[Dict[str, Any]], Optional[str]]] = None) -> StepResult:
    """The loop every wait shares: probe until met, the timeout, a cancel, or ``give_up``
    says there is no point (a domain that stopped will never print its marker)."""
    timeout = float(args.get("timeout") or DEFAULT_TIMEOUT)
    if ctx.timeout is not None:
        timeout = min(timeout, ctx.timeout)
    interval = float(args.get("interval") or DEFAULT_INTERVAL)
    start = time.monotonic()
    while True:
        remaining = timeout - (time.monotonic() - start)
        met, info = probe(max(remaining, 0.1))
        info.update(elapsed=round(time.monotonic() - start, 3), waited_for=what)
        if met:
            return StepResult("ok", msg=ready_msg(info), data=info)
        if ctx.check:
            return StepResult("skipped", msg="would wait for %s (not ready now)" % what, data=info)
        why = give_up(info) if give_up is not None else None
        if why:
            raise StepFailed(why, data=info)
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            raise StepFailed("timed out after %g s waiting for %s" % (timeout, what), data=info)
        if ctx.cancel.wait(min(interval, remaining)):
            raise StepFailed("interrupted: %s (while waiting for %s)" % (ctx.cancel.reason, what), data=info)
