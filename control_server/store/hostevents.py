"""The ``host_events`` table: what happened on a host, in arrival order (``/v1/events``).

Typed reads and writes for ``service.hostevents`` (which names the event kinds): the
service never builds SQL itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select

from control_server.store.schema import host_events
from control_server.store.tx import write_tx


@dataclass(frozen=True)
class HostEvent:
    id: int
    host: str
    kind: str
    instance: str | None
    time: float
    payload: dict[str, Any]
    received_by: str | None


class HostEventLog:
    def __init__(self, engine: Engine, received_by: str) -> None:
        self.engine = engine
        self.received_by = received_by

    def append(self, host: str, kind: str, payload: dict[str, Any],
               instance: str | None = None, when: float | None = None) -> int:
        """Record one event (committed before it returns); its id."""
        row = {"host": host, "kind": kind, "instance": instance,
               "payload": json.dumps(payload, default=str, separators=(",", ":")),
               "time": when if when is not None else time.time(),
               "received_by": self.received_by}
        with write_tx(self.engine) as conn:
            new_id = conn.execute(insert(host_events).returning(host_events.c.id), row)
            return int(new_id.scalar_one())

    def after(self, after_id: int = 0, limit: int = 500, host: str | None = None
              ) -> list[HostEvent]:
        """Events with id > ``after_id``, oldest first."""
        query = (select(host_events).where(host_events.c.id > after_id)
                 .order_by(host_events.c.id).limit(limit))
        if host is not None:
            query = query.where(host_events.c.host == host)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [HostEvent(int(r.id), r.host, r.kind, r.instance, float(r.time),
                          json.loads(r.payload or "{}"), r.received_by) for r in rows]

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(host_events.c.id))).scalar() or 0)
