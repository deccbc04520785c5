"""The executor's command line.

    python3 executor.pyz [--watch-stdin]   run ONE request read from stdin (the normal use)
    python3 executor.pyz --journal ID      print the journaled events of request ID
    python3 executor.pyz --journal ID --follow   ... and what is appended, until the end
    python3 executor.pyz --journal-list    one JSON line per journal: id, status, exit, mtime
    python3 executor.pyz --watch-domains [URI] [--heartbeat S]   stream libvirt domain events
    python3 executor.pyz --version         protocol, digest and version as one JSON line
    python3 -m host_executor ...           the same, from a source tree (digest "dev")

Exit status: 0 all steps ok/changed/skipped, 1 a step failed (or the run was interrupted),
2 bad request / protocol mismatch / unknown journal / bad usage, 3 lock not acquired.
Nothing here may print a traceback: every failure is an ``error`` event and an exit code.
"""

from __future__ import annotations

import os
import sys

from host_executor import __version__, journal, protocol, request
from host_executor.emitter import Emitter, write_stdout
from host_executor.errors import BadRequest, ExecutorError
from host_executor.identity import executor_digest
from host_executor.watch import ControllerWatch

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

USAGE = (
    "usage: python3 -m host_executor [--watch-stdin] < request.json\n"
    "       python3 -m host_executor --journal ID [--follow] | --journal-list | --version\n"
    "       python3 -m host_executor --watch-domains [URI] [--heartbeat SECONDS] [--watch-stdin]\n"
)


def _hello(request_id: Optional[str], emitter: Emitter) -> Dict[str, Any]:
    return {
        "event": "hello",
        "protocol": protocol.PROTOCOL_VERSION,
        "digest": executor_digest(),
        "version": __version__,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "id": request_id,
        "journal": emitter.journal.path if emitter.journal else None,
        "journal_error": emitter.journal_error,
    }


def _error_event(exc: ExecutorError, request_id: Optional[str]) -> Dict[str, Any]:
    event: Dict[str, Any] = {"event": "error", "id": request_id}
    event.update(exc.event_fields())
    return event


def _run_sequence(req: Dict[str, Any], emitter: Emitter, watch: ControllerWatch) -> int:
    from host_executor.runner import Sequence

    lock = None
    if req["lock"] is not None:
        from host_executor.lock import HostLock

        # A lock file's name must not show a secret either (it rests under the cache dir).
        lock = HostLock(emitter.redact_text(req["lock"]["name"]), req["lock"].get("timeout"))
        lock.acquire(watch.token)
    try:
        done = Sequence(req, emitter, watch).run()
    finally:
        if lock is not None:
            lock.release()
    return int(done["exit"])


def run_request(watch_stdin: bool = False) -> int:
    watch = ControllerWatch()
    emitter = Emitter(watch)
    doc, why = request.read_document()
    emitter.redact_secrets_of(doc)
    request_id = request.request_id_of(doc)
    watch.install_signals()
    try:
        try:
            if request_id is not None:
                emitter.open_journal(request_id)
        except ExecutorError as exc:  # the id ran here already: its journal is left intact
            emitter.emit(_hello(request_id, emitter))
            emitter.emit(_error_event(exc, request_id))
            return exc.exit_code
        emitter.emit(_hello(request_id, emitter))
        try:
            if why is not None:
                raise BadRequest(why)
            req = request.validate(doc)
            watch.abort_on_loss = req.get("on_disconnect") == "abort"
            watch.start(watch_stdin)
            return _run_sequence(req, emitter, watch)
        except ExecutorError as exc:
            emitter.emit(_error_event(exc, request_id))
            return exc.exit_code
    finally:
        emitter.close()
        if request_id is not None:
            _prune_quietly()


def _prune_quietly() -> None:
    try:
        journal.prune_if_due()
    except OSError:
        pass


def show_journal(request_id: str) -> int:
    try:
        data = journal.read_journal(request_id)
    except ExecutorError as exc:
        write_stdout(protocol.encode_event(_error_event(exc, request_id)))
        return exc.exit_code
    write_stdout(data)
    return protocol.EXIT_OK


def follow_journal(request_id: str) -> int:
    """Print the journal, then what the (detached) executor appends, until its end. A
    cancel sent to the follower is passed on to that executor (SIGTERM), so a reattached
    controller can still stop the sequence, and its last events follow."""
    import contextlib
    import signal

    watch = ControllerWatch()
    watch.install_signals()
    watch.start(False)
    passed_on = []  # type: List[bool]

    def pass_cancel_on() -> None:
        if watch.cancelled and not passed_on:
            passed_on.append(True)
            pid = journal.writer_pid(request_id)
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)

    try:
        journal.follow_journal(request_id, write_stdout, lambda: watch.lost, tick=pass_cancel_on)
    except ExecutorError as exc:
        write_stdout(protocol.encode_event(_error_event(exc, request_id)))
        return exc.exit_code
    return protocol.EXIT_OK


def list_journals() -> int:
    import json

    lines = [json.dumps(entry, sort_keys=True) + "\n" for entry in journal.list_journals()]
    write_stdout("".join(lines).encode("utf-8"))
    return protocol.EXIT_OK


def _usage_error(message: str) -> int:
    event = {"event": "error", "code": "usage", "message": message, "exit": 2, "id": None}
    write_stdout(protocol.encode_event(event))
    os.write(2, USAGE.encode())
    return protocol.EXIT_BAD_REQUEST


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args == ["--watch-stdin"]:
            return run_request(watch_stdin=bool(args))
        if args[0] == "--journal" and len(args) == 2:
            return show_journal(args[1])
        if args[0] == "--journal" and len(args) == 3 and args[2] == "--follow":
            return follow_journal(args[1])
        if args == ["--journal-list"]:
            return list_journals()
        if args[0] == "--watch-domains":
            from host_executor.libvirt_watch import watch_domains

            return watch_domains(args[1:])
        if args == ["--version"]:
            import json

            info = {"protocol": protocol.PROTOCOL_VERSION, "digest": executor_digest(),
                    "version": __version__}
            write_stdout((json.dumps(info, sort_keys=True) + "\n").encode())
            return protocol.EXIT_OK
        if args[0] in ("-h", "--help"):
            write_stdout(USAGE.encode())
            return protocol.EXIT_OK
        return _usage_error("unknown arguments: %s" % " ".join(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: an event, never a traceback
        event = {"event": "error", "code": "internal", "exit": protocol.EXIT_FAILED, "id": None,
                 "message": "executor bug: %s: %s" % (type(exc).__name__, exc)}
        write_stdout(protocol.encode_event(event))
        return protocol.EXIT_FAILED
