"""The machines' sink: one JSON object per line, each event as it happens, then a summary.

Every line has ``kind`` (``run_start``, ``host_start``, ``executor``, ``host_end``,
``run_end``) and ``time``; executor events carry the executor's own event under ``event``.
"""

from __future__ import annotations

import json
import sys
from typing import IO

from control_server.events import RunEvent, event_to_dict


class JsonLinesSink:
    def __init__(self, file: IO[str] | None = None) -> None:
        self.file = file or sys.stdout

    def emit(self, event: RunEvent) -> None:
        self.file.write(json.dumps(event_to_dict(event), default=str) + "\n")
        self.file.flush()
