"""Reading and checking the ONE request document on stdin.

The request ends where its JSON object ends: the executor stops reading as soon as the
bytes read so far parse as a complete document, so a controller may keep stdin open for
the whole run. Checks beyond ``protocol.validate_request`` (request field types the schema
does not cover, and each action's deeper argument checks) live here, so that a request
the executor cannot run is rejected before any step starts (exit 2).
"""

from __future__ import annotations

import os

from host_executor import actions, jsonfast, protocol
from host_executor.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Optional, Tuple

MAX_REQUEST = 64 * 1024 * 1024


def read_document(fd: int = 0) -> Tuple[Any, Optional[str]]:
    """Read stdin until one complete JSON document; return ``(document, None)`` or
    ``(None, why-not)``."""
    buf = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            return None, "cannot read the request from stdin: %s" % exc
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            return None, "the request is larger than %d bytes" % MAX_REQUEST
        # Parse only when the text could be complete, to keep large requests linear-ish.
        if buf.rstrip().endswith(b"}"):
            doc, error = _parse(bytes(buf))
            if error is None:
                return doc, None
    if not buf.strip():
        return None, "no request on stdin (empty input)"
    return _parse(bytes(buf))


def _parse(data: bytes) -> Tuple[Any, Optional[str]]:
    try:
        return jsonfast.loads(data), None
    except RecursionError:
        return None, "the request is not valid JSON: nested too deeply"
    except ValueError as exc:  # JSONDecodeError (json is imported by now), UnicodeDecodeError
        import json

        if isinstance(exc, json.JSONDecodeError) and exc.pos >= len(exc.doc.rstrip()):
            return None, "the request is truncated: its JSON ends early (%d bytes read)" % len(data)
        return None, "the request is not valid JSON: %s" % exc


def request_id_of(doc: Any) -> Optional[str]:
    if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"]:
        return str(doc["id"])
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fields(req: Dict[str, Any]) -> None:
    for key in ("check", "diff"):
        if not isinstance(req[key], bool):
            raise protocol.ProtocolError("expected bool, got %s" % type(req[key]).__name__, key)
    if req["deadline"] is not None and not _number(req["deadline"]):
        raise protocol.ProtocolError("expected a unix time or null", "deadline")
    limit = req["output_limit"]
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise protocol.ProtocolError("expected a non-negative number of bytes", "output_limit")
    lock = req["lock"]
    if lock is not None:
        for key in lock:
            if key not in ("name", "timeout"):
                raise protocol.ProtocolError("unknown lock key %r" % key, "lock." + key)
        timeout = lock.get("timeout")
        if timeout is not None and (not _number(timeout) or timeout < 0):
            raise protocol.ProtocolError("expected a non-negative number of seconds", "lock.timeout")


def _check_steps(req: Dict[str, Any]) -> None:
    for index, step in enumerate(req["steps"]):
        try:
            actions.check_args(step["action"], step.get("args") or {})
            undo = step.get("undo")
            if undo is not None:
                actions.check_args(undo["action"], undo.get("args") or {}, "undo.args")
                timeout = undo.get("timeout")
                if timeout is not None and (not _number(timeout) or timeout <= 0):
                    raise protocol.ProtocolError(
                        "expected a positive number of seconds", "undo.timeout"
                    )
        except protocol.ProtocolError as exc:
            exc.step_index = index
            exc.step_name = step.get("name")
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A shape no check foresaw: still a bad request (exit 2), never a crash.
            raise protocol.ProtocolError(
                "invalid arguments (%s: %s)" % (type(exc).__name__, exc), "args", index, step.get("name")
            ) from None


def validate(doc: Any) -> Dict[str, Any]:
    """The request with defaults filled in; ``BadRequest`` naming the field otherwise."""
    try:
        req = protocol.validate_request(doc)
        _check_fields(req)
        _check_steps(req)
    except protocol.ProtocolError as exc:
        raise BadRequest.from_protocol(exc) from None
    return req
