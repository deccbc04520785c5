"""The executor's error hierarchy.

Every error the executor reports to the control server is an ``ExecutorError``; the ones
that end the run become an ``error`` event (``code``) and an exit status (``exit_code``).
A step's own failure never ends the executor: it becomes that step's ``failed`` status.

    ExecutorError                 code, exit_code
    ├── BadRequest                the request cannot be run (exit 2); wraps a ProtocolError
    │   └── ProtocolMismatch      the request speaks another protocol version (exit 2)
    ├── UnknownJournal            ``--journal ID`` for an id with no journal (exit 2)
    ├── RequestReused             a request id that already ran or runs here (exit 2)
    ├── ExecutorDied              ``--journal ID --follow``: the journal has no end and its
    │                             executor is gone (exit 1)
    ├── LockTimeout               the named host lock was not acquired in time (exit 3)
    ├── StepFailed                one step failed: msg, rc, data (becomes ``step_end``)
    └── ControllerGone            the control server went away (stdin/stdout closed, signal)
"""

from __future__ import annotations

from host_executor import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Optional


class ExecutorError(Exception):
    """Base of every error the executor reports."""

    code = "internal"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def event_fields(self) -> Dict[str, Any]:
        """The fields of the ``error`` event that reports this error."""
        return {"code": self.code, "message": self.message, "exit": self.exit_code}


class BadRequest(ExecutorError):
    """The request is not a valid request of this protocol version."""

    code = "bad_request"
    exit_code = protocol.EXIT_BAD_REQUEST

    def __init__(self, message: str, error: Optional[protocol.ProtocolError] = None) -> None:
        super().__init__(message)
        self.error = error

    @classmethod
    def from_protocol(cls, error: protocol.ProtocolError) -> BadRequest:
        if error.field == "protocol" and "version mismatch" in error.message:
            return ProtocolMismatch(str(error), error)
        return cls(str(error), error)

    def event_fields(self) -> Dict[str, Any]:
        fields = super().event_fields()
        if self.error is not None:
            fields["field"] = self.error.field
            fields["step_index"] = self.error.step_index
            fields["step_name"] = self.error.step_name
        return fields


class ProtocolMismatch(BadRequest):
    code = "protocol_mismatch"

    def event_fields(self) -> Dict[str, Any]:
        fields = super().event_fields()
        fields["protocol"] = protocol.PROTOCOL_VERSION
        return fields


class UnknownJournal(ExecutorError):
    code = "unknown_journal"
    exit_code = protocol.EXIT_BAD_REQUEST


class RequestReused(ExecutorError):
    """A request id runs once per host: a second request with it is refused, never re-run."""

    code = "request_reused"
    exit_code = protocol.EXIT_BAD_REQUEST


class ExecutorDied(ExecutorError):
    code = "executor_died"
    exit_code = protocol.EXIT_FAILED


class LockTimeout(ExecutorError):
    code = "lock_timeout"
    exit_code = protocol.EXIT_LOCK

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__("lock %r not acquired within %g s (held by another sequence)" % (name, timeout))
        self.name = name
        self.timeout = timeout

    def event_fields(self) -> Dict[str, Any]:
        fields = super().event_fields()
        fields["lock"] = self.name
        return fields


class StepFailed(ExecutorError):
    """Raised inside an action: the step fails with ``msg`` (and optional rc/output/data)."""

    code = "step_failed"

    def __init__(
        self,
        message: str,
        rc: Optional[int] = None,
        data: Optional[Dict[str, Any]] = None,
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.rc = rc
        self.data = data or {}
        self.stdout = stdout
        self.stderr = stderr


class ControllerGone(ExecutorError):
    """The control server went away; ``reason`` says how it was noticed."""

    code = "controller_gone"

    def __init__(self, reason: str) -> None:
        super().__init__("interrupted: %s" % reason)
        self.reason = reason
