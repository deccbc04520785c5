"""The one definition of hostplane's wire format, shared by the control server and the executor.

Standard library only, Python >= 3.8: this module is shipped to hosts inside the executor.

Request: ONE JSON document on the executor's stdin::

    {"protocol": 1, "id": "<request id>", "check": false, "diff": false,
     "lock": {"name": "instance-vm1", "timeout": 60} | null,
     "deadline": <unix time> | null, "on_failure": "stop" | "rollback",
     "output_limit": 1048576, "redact": ["<secret>", ...] (optional),
     "on_disconnect": "detach" | "abort" (optional, detach by default),
     "resume": [{"index": 0, "status": "changed", "data": {...}}, ...] (optional: steps an
               earlier attempt finished, per its journal; they are not run again),
     "steps": [{"name": "...", "action": "command", "args": {...},
                "timeout": 30 | null, "undo": {"action": "...", "args": {...}} | null,
                "ignore_errors": false}]}

Response: JSON Lines on stdout, one event per line, flushed per event:
``hello``, then per step ``step_start``/``step_end``, ``rollback_start``/``rollback_step_end``/
``rollback_end`` when a rollback runs, and ``done``; ``error`` for a bad request.

Output is lossless: ``stdout``/``stderr`` are text (UTF-8, undecodable bytes replaced for
display); when the bytes were not valid UTF-8, ``stdout_b64``/``stderr_b64`` carry them
exactly. Each stream is capped at ``output_limit`` bytes, with ``*_truncated`` set.

Exit status: 0 every step ok/changed/skipped, 1 a step failed, 2 bad request (including a
protocol version mismatch), 3 lock not acquired.
"""

from __future__ import annotations

from host_executor import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional, Tuple
    ArgSpec = Tuple[Tuple[str, ...], bool, Optional[Tuple[Any, ...]]]

PROTOCOL_VERSION = 1

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_REQUEST = 2
EXIT_LOCK = 3
#: The launcher's exit status when the cached executor is not on the host yet.
EXIT_MISSING = 97
MISSING_MARKER = "HOSTPLANE-EXECUTOR-MISSING"

#: The zipapp is named ``<prefix><digest><suffix>``; the digest is also embedded in it.
EXECUTOR_NAME_PREFIX = "hostplane-executor-"
EXECUTOR_NAME_SUFFIX = ".pyz"
EXECUTOR_DIGEST_FILE = "_digest.txt"

DEFAULT_OUTPUT_LIMIT = 1024 * 1024
ON_FAILURE = ("stop", "rollback")
STATUSES = ("ok", "changed", "failed", "skipped")

EVENTS = (
    "hello",
    "step_start",
    "step_end",
    "rollback_start",
    "rollback_step_start",
    "rollback_step_end",
    "rollback_end",
    "done",
    "error",
    # watch mode (host events)
    "domain_event",
    "domain_list",
    "heartbeat",
)


class ProtocolError(ValueError):
    """A request or event does not follow the protocol.

    ``field`` is a dotted path to the offending value (``steps[2].args.argv``), ``step``
    the offending step's index and name when there is one.
    """

    def __init__(
        self,
        message: str,
        field: Optional[str] = None,
        step_index: Optional[int] = None,
        step_name: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.step_index = step_index
        self.step_name = step_name

    def __str__(self) -> str:
        where = ""
        if self.step_index is not None:
            where = "step %d" % (self.step_index + 1)
            if self.step_name:
                where += " (%r)" % self.step_name
            where += ": "
        if self.field:
            where += "%s: " % self.field
        return where + self.message


# --- action schemas ---------------------------------------------------------------------
# An argument spec: (types, required, choices). ``types`` are JSON types by name.

STR = ("str",)
INT = ("int",)
NUM = ("int", "float")
BOOL = ("bool",)
LIST = ("list",)
DICT = ("dict",)
STR_OR_LIST = ("str", "list")
INT_OR_LIST = ("int", "list")
STR_OR_INT = ("str", "int")

_JSON_TYPES = {
    "str": (str,),
    "int": (int,),
    "float": (float,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "null": (type(None),),
}


def _a(types: Tuple[str, ...], required: bool = False, choices: Any = None) -> ArgSpec:
    return (types, required, tuple(choices) if choices else None)


_RUN_COMMON: Dict[str, ArgSpec] = {
    "creates": _a(STR),
    "removes": _a(STR),
    "unless": _a(STR_OR_LIST),
    "env": _a(DICT),
    "cwd": _a(STR),
    "stdin": _a(STR),
    "rc": _a(INT_OR_LIST),
    "changed_when_rc": _a(INT_OR_LIST),
}

_LIBVIRT_URI = {"uri": _a(STR)}

ACTIONS: Dict[str, Dict[str, ArgSpec]] = {
    "command": dict(_RUN_COMMON, argv=_a(LIST, True)),
    "shell": dict(_RUN_COMMON, cmd=_a(STR, True), executable=_a(STR)),
    "file": {
        "path": _a(STR, True),
        "state": _a(STR, False, ("file", "directory", "absent")),
        "content": _a(STR),
        "content_b64": _a(STR),
        "mode": _a(STR_OR_INT),
        "owner": _a(STR_OR_INT),
        "group": _a(STR_OR_INT),
        "recurse": _a(BOOL),
    },
    "wait": {
        "path": _a(STR),
        "port": _a(INT),
        "host": _a(STR),
        "pattern": _a(STR),
        "domain": _a(STR),
        "state": _a(STR),
        "serial_log": _a(STR),
        "address": _a(BOOL),
        "timeout": _a(NUM),
        "interval": _a(NUM),
        "uri": _a(STR),
    },
    "facts": {"gather": _a(LIST)},
    "libvirt_domain": dict(
        _LIBVIRT_URI,
        name=_a(STR, True),
        xml=_a(STR),
        state=_a(STR, False, ("defined", "running", "shutoff", "paused", "absent")),
        autostart=_a(BOOL),
        shutdown_timeout=_a(NUM),
        reboot=_a(BOOL),
        remove_storage=_a(BOOL),
    ),
    "libvirt_network": dict(
        _LIBVIRT_URI,
        name=_a(STR, True),
        xml=_a(STR),
        state=_a(STR, False, ("active", "inactive", "absent")),
        autostart=_a(BOOL),
    ),
    "libvirt_pool": dict(
        _LIBVIRT_URI,
        name=_a(STR, True),
        xml=_a(STR),
        state=_a(STR, False, ("active", "inactive", "absent")),
        autostart=_a(BOOL),
        build=_a(BOOL),
    ),
    "libvirt_volume": dict(
        _LIBVIRT_URI,
        pool=_a(STR, True),
        name=_a(STR, True),
        capacity=_a(STR_OR_INT),
        format=_a(STR, False, ("raw", "qcow2")),
        backing=_a(STR),
        backing_format=_a(STR, False, ("raw", "qcow2")),
        clone_from=_a(STR),
        state=_a(STR, False, ("present", "absent")),
    ),
    "libvirt_snapshot": dict(
        _LIBVIRT_URI,
        domain=_a(STR, True),
        name=_a(STR),
        state=_a(STR, False, ("present", "absent", "reverted", "list")),
        description=_a(STR),
        force=_a(BOOL),
    ),
    "libvirt_resize": dict(
        _LIBVIRT_URI,
        name=_a(STR, True),
        memory_mib=_a(INT),
        vcpus=_a(INT),
        disk=_a(STR),
        disk_capacity=_a(STR_OR_INT),
    ),
    "image": {
        "name": _a(STR, True),
        "dir": _a(STR),
        "digest": _a(STR),
        "format": _a(STR, False, ("qcow2", "raw")),
        "size": _a(INT),
        "overlay_dirs": _a(LIST),
        "state": _a(STR, False, ("prepare", "present", "absent")),
    },
    "image_list": {"dir": _a(STR), "overlay_dirs": _a(LIST)},
    "cloud_init_seed": {
        "name": _a(STR, True),
        "dir": _a(STR),
        "user_data": _a(STR),
        "ssh_authorized_keys": _a(LIST),
        "hostname": _a(STR),
        "network_config": _a(DICT),
        "reseed": _a(BOOL),
        "state": _a(STR, False, ("present", "absent", "reverted")),
    },
}

# Arguments required only for some states, checked after the schema. (None today: a network
# or pool that exists can be started by name; the action names one that is missing.)
_STATE_REQUIRES: Dict[Tuple[str, Optional[str]], Tuple[str, ...]] = {}

STEP_KEYS = ("name", "action", "args", "timeout", "undo", "ignore_errors")
REQUEST_KEYS = (
    "protocol",
    "id",
    "check",
    "diff",
    "lock",
    "deadline",
    "on_failure",
    "output_limit",
    "steps",
    "redact",  # optional: secret values the executor masks in every event
    "on_disconnect",  # optional: detach (default) or abort when the controller is lost
    "resume",  # optional: the steps an earlier attempt of this sequence finished
)
ON_DISCONNECT = ("detach", "abort")


def _type_ok(value: Any, types: Tuple[str, ...]) -> bool:
    for name in types:
        py = _JSON_TYPES[name]
        if name in ("int", "float") and isinstance(value, bool):
            continue
        if isinstance(value, py):
            return True
    return False


def _type_names(types: Tuple[str, ...]) -> str:
    return " or ".join(types)


def _finite(value: Any) -> bool:
    """A JSON number that is not NaN or infinite (Python's json reads NaN and Infinity)."""
    return _type_ok(value, NUM) and value - value == 0


#: Arguments that are data, not OS strings: a NUL in them is a byte like any other.
_NUL_ALLOWED = ("content", "stdin", "pattern")


def _check_text(value: Any, field: str, nul_ok: bool, index: Optional[int], name: Optional[str]) -> None:
    """No lone surrogate (not UTF-8) anywhere, no NUL in what becomes an OS string
    (argv, env, paths): either would fail deep inside the step as a traceback."""
    if isinstance(value, str):
        if not nul_ok and "\x00" in value:
            raise ProtocolError("contains a NUL character", field, index, name)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("contains a lone surrogate (not valid UTF-8)", field, index, name) from None
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, "%s[%d]" % (field, i), nul_ok, index, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = "%s.%s" % (field, key)
            _check_text(key, where, nul_ok, index, name)
            _check_text(item, where, nul_ok, index, name)


def _check_env(env: Any, field: str, index: Optional[int], name: Optional[str]) -> None:
    for key, value in env.items():
        if not key or "=" in key:
            raise ProtocolError("not a valid environment variable name", "%s.%s" % (field, key), index, name)
        if not isinstance(value, str):
            raise ProtocolError(
                "expected a string, got %s" % type(value).__name__, "%s.%s" % (field, key), index, name
            )


def validate_args(
    action: str, args: Any, index: Optional[int] = None, name: Optional[str] = None, prefix: str = "args"
) -> None:
    """Check one action's ``args`` against its schema; raise ``ProtocolError`` naming the field."""
    if action not in ACTIONS:
        known = ", ".join(sorted(ACTIONS))
        raise ProtocolError(
            "unknown action %r (known: %s)" % (action, known), "action", index, name
        )
    if not isinstance(args, dict):
        raise ProtocolError("must be a mapping of arguments", prefix, index, name)
    schema = ACTIONS[action]
    for key in args:
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ProtocolError(
                "unknown argument %r for action %s (known: %s)" % (key, action, known),
                "%s.%s" % (prefix, key),
                index,
                name,
            )
    for key, (types, required, choices) in schema.items():
        if key not in args or args[key] is None:
            if required:
                raise ProtocolError(
                    "required argument of action %s is missing" % action,
                    "%s.%s" % (prefix, key),
                    index,
                    name,
                )
            continue
        value = args[key]
        if not _type_ok(value, types):
            raise ProtocolError(
                "expected %s, got %s" % (_type_names(types), type(value).__name__),
                "%s.%s" % (prefix, key),
                index,
                name,
            )
        if choices is not None and value not in choices:
            raise ProtocolError(
                "expected one of %s, got %r" % (", ".join(map(str, choices)), value),
                "%s.%s" % (prefix, key),
                index,
                name,
            )
    for key, value in args.items():
        _check_text(value, "%s.%s" % (prefix, key), key in _NUL_ALLOWED, index, name)
    if args.get("env") is not None:
        _check_env(args["env"], prefix + ".env", index, name)
    if action == "command":
        argv = args["argv"]
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ProtocolError(
                "must be a non-empty list of strings", "%s.argv" % prefix, index, name
            )
    state = args.get("state")
    for needed in _STATE_REQUIRES.get((action, state), ()):
        if needed not in args:
            raise ProtocolError(
                "required when state is %s" % state, "%s.%s" % (prefix, needed), index, name
            )


def validate_step(step: Any, index: int) -> None:
    """Check one step; raise ``ProtocolError`` naming the step and the field."""
    if not isinstance(step, dict):
        raise ProtocolError("a step must be a mapping", None, index)
    name = step.get("name") if isinstance(step.get("name"), str) else None
    for key in step:
        if key not in STEP_KEYS:
            raise ProtocolError("unknown step key %r" % key, key, index, name)
    if not isinstance(step.get("name"), str) or not step["name"]:
        raise ProtocolError("every step needs a non-empty name", "name", index, name)
    action = step.get("action")
    if not isinstance(action, str):
        raise ProtocolError("every step needs an action", "action", index, name)
    validate_args(action, step.get("args", {}), index, name)
    timeout = step.get("timeout")
    if timeout is not None and (not _finite(timeout) or timeout <= 0):
        raise ProtocolError("expected a positive number of seconds", "timeout", index, name)
    if "ignore_errors" in step and not isinstance(step["ignore_errors"], bool):
        raise ProtocolError("expected bool", "ignore_errors", index, name)
    undo = step.get("undo")
    if undo is not None:
        if not isinstance(undo, dict) or not isinstance(undo.get("action"), str):
            raise ProtocolError("undo must be a mapping with an action", "undo", index, name)
        for key in undo:
            if key not in ("action", "args", "timeout"):
                raise ProtocolError("unknown undo key %r" % key, "undo." + key, index, name)
        validate_args(undo["action"], undo.get("args", {}), index, name, "undo.args")
        undo_timeout = undo.get("timeout")
        if undo_timeout is not None and (not _finite(undo_timeout) or undo_timeout <= 0):
            raise ProtocolError("expected a positive number of seconds", "undo.timeout", index, name)


def validate_request(doc: Any) -> Dict[str, Any]:
    """Validate a whole request and return it with defaults filled in.

    A protocol version mismatch is reported first, naming both versions, so that an older
    or newer peer never misparses what it cannot understand.
    """
    if not isinstance(doc, dict):
        raise ProtocolError("the request must be a JSON object")
    version = doc.get("protocol")
    if isinstance(version, bool) or version != PROTOCOL_VERSION:  # True == 1 in Python
        raise ProtocolError(
            "protocol version mismatch: request speaks %r, this executor speaks %d"
            % (version, PROTOCOL_VERSION),
            "protocol",
        )
    for key in doc:
        if key not in REQUEST_KEYS:
            raise ProtocolError("unknown request key %r" % key, key)
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        raise ProtocolError("a non-empty string is required", "id")
    on_failure = doc.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        raise ProtocolError("expected stop or rollback, got %r" % (on_failure,), "on_failure")
    lock = doc.get("lock")
    if lock is not None and (
        not isinstance(lock, dict) or not isinstance(lock.get("name"), str) or not lock["name"]
    ):
        raise ProtocolError("expected {name, timeout}", "lock")
    _check_times(doc)
    redact = doc.get("redact", [])
    if not isinstance(redact, list) or not all(isinstance(v, str) for v in redact):
        raise ProtocolError("expected a list of strings", "redact")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise ProtocolError("a list of steps is required", "steps")
    for index, step in enumerate(steps):
        validate_step(step, index)
    _validate_continuation(doc, len(steps))
    out = dict(doc)
    out.setdefault("check", False)
    out.setdefault("diff", False)
    out.setdefault("lock", None)
    out.setdefault("deadline", None)
    out["on_failure"] = on_failure
    out.setdefault("output_limit", DEFAULT_OUTPUT_LIMIT)
    return out


def _check_times(doc: Dict[str, Any]) -> None:
    # NaN compares false with everything: a NaN lock timeout would wait forever.
    deadline = doc.get("deadline")
    if deadline is not None and not _finite(deadline):
        raise ProtocolError("expected a unix time (a finite number) or null", "deadline")
    lock = doc.get("lock")
    timeout = lock.get("timeout") if isinstance(lock, dict) else None
    if timeout is not None and (not _finite(timeout) or timeout < 0):
        raise ProtocolError("expected a non-negative, finite number of seconds", "lock.timeout")


def _validate_continuation(doc: Dict[str, Any], count: int) -> None:
    if doc.get("on_disconnect", "detach") not in ON_DISCONNECT:
        raise ProtocolError("expected detach or abort, got %r" % (doc["on_disconnect"],),
                            "on_disconnect")
    resume = doc.get("resume", [])
    if not isinstance(resume, list):
        raise ProtocolError("expected a list of finished steps", "resume")
    seen = set()
    for i, item in enumerate(resume):
        where = "resume[%d]" % i
        if not isinstance(item, dict):
            raise ProtocolError("expected {index, status, data}", where)
        index = item.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise ProtocolError("expected a step index below %d" % count, where + ".index")
        if index in seen:
            raise ProtocolError("step %d is listed twice" % index, where + ".index")
        seen.add(index)
        if item.get("status") not in STATUSES:
            raise ProtocolError("expected one of %s" % ", ".join(STATUSES), where + ".status")
        if not isinstance(item.get("data"), (dict, type(None))):
            raise ProtocolError("expected an object or null", where + ".data")


def make_request(
    request_id: str,
    steps: List[Dict[str, Any]],
    check: bool = False,
    diff: bool = False,
    lock: Optional[Dict[str, Any]] = None,
    deadline: Optional[float] = None,
    on_failure: str = "stop",
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    redact: Optional[List[str]] = None,
    on_disconnect: str = "detach",
    resume: Optional[List[Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """Build a request document (the control side's constructor)."""
    doc: Dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "id": request_id,
        "check": check,
        "diff": diff,
        "lock": lock,
        "deadline": deadline,
        "on_failure": on_failure,
        "output_limit": output_limit,
        "steps": steps,
    }
    if redact:  # only when there are secrets: a request without them stays as it was
        doc["redact"] = list(redact)
    if on_disconnect != "detach":
        doc["on_disconnect"] = on_disconnect
    if resume:
        doc["resume"] = list(resume)
    return doc


# --- events -----------------------------------------------------------------------------


def encode_event(event: Dict[str, Any]) -> bytes:
    """One JSON line. ``ensure_ascii`` keeps the line pure ASCII whatever the payload."""
    return (jsonfast.dumps(event) + "\n").encode("ascii")


def decode_event(line: bytes) -> Dict[str, Any]:
    """Parse one event line; raise ``ProtocolError`` on anything that is not an event."""
    import json

    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("not a JSON event line: %s" % exc) from None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        raise ProtocolError("not a hostplane event: %r" % (line[:200],))
    if event["event"] == "hello" and event.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(
            "protocol version mismatch: executor speaks %r, this control server speaks %d"
            % (event.get("protocol"), PROTOCOL_VERSION),
            "protocol",
        )
    return event


def encode_output(data: bytes, limit: int, stream: str) -> Dict[str, Any]:
    """Fields for one captured stream: text, exact bytes when not UTF-8, truncation flag."""
    truncated = len(data) > limit
    if truncated:
        data = data[:limit]
    fields: Dict[str, Any] = {stream + "_truncated": truncated}
    try:
        fields[stream] = data.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        fields[stream] = data.decode("utf-8", errors="replace")
        fields[stream + "_b64"] = base64.b64encode(data).decode("ascii")
    return fields


def output_bytes(event: Dict[str, Any], stream: str) -> bytes:
    """The exact bytes of a captured stream from a ``step_end`` event."""
    raw = event.get(stream + "_b64")
    if raw is not None:
        import base64

        return base64.b64decode(raw)
    return str(event.get(stream, "")).encode("utf-8")
