"""Writing events: to the journal, then to stdout (flushed one by one).

The journal comes first: a controller that reattaches follows the journal, so an event must
be there even when a stalled channel blocks the write to stdout. stdout is written with
``os.write`` on fd 1, unbuffered, so each event leaves as soon as it exists. Once the
controller is lost (EPIPE, hang-up), stdout writes stop and the journal continues.
"""

from __future__ import annotations

from host_executor import protocol
from host_executor.journal import Journal, write_all
from host_executor.watch import ControllerWatch

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Optional

    from host_executor.redact import Redactor


class Emitter:
    def __init__(self, watch: ControllerWatch, stdout_fd: int = 1) -> None:
        self.watch = watch
        self.stdout_fd = stdout_fd
        self.stdout_ok = True
        self.journal: Optional[Journal] = None
        self.journal_error: Optional[str] = None
        self.redactor: Optional[Redactor] = None

    def redact_secrets_of(self, doc: Any) -> None:
        """Mask the secrets ``doc`` (the raw request) names in every later event."""
        if isinstance(doc, dict) and doc.get("redact"):  # no import at all without secrets
            from host_executor.redact import redactor_for

            self.redactor = redactor_for(doc)

    def redact_text(self, text: str) -> str:
        return text if self.redactor is None else self.redactor.text(text)

    def open_journal(self, request_id: str) -> None:
        try:
            self.journal = Journal(request_id)
        except OSError as exc:
            self.journal_error = str(exc)

    def emit(self, event: Dict[str, Any]) -> None:
        if self.redactor is not None:  # before both writes: no secret rests in the journal
            event = self.redactor.event(event)
        line = protocol.encode_event(event)
        if self.journal is not None:
            self.journal.append(line, event["event"])
        if self.stdout_ok and not self.watch.stdout_gone:
            try:
                write_all(self.stdout_fd, line)
            except OSError as exc:
                self.stdout_ok = False
                self.watch.mark_lost("stdout closed (%s)" % (exc.strerror or exc), True)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()


def write_stdout(data: bytes, fd: int = 1) -> bool:
    """Write raw bytes (``--journal`` output); False if the reader is gone."""
    try:
        write_all(fd, data)
        return True
    except OSError:
        return False

