"""The ``instances`` table: every instance (libvirt domain) serve knows of, per host, so a
restart does not forget them (``service.state`` keeps them current; no SQL there)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy import Engine as Engine  # re-exported: the service names the type from here

from control_server.store.schema import instances
from control_server.store.tx import write_tx


@dataclass(frozen=True)
class InstanceRow:
    host: str
    name: str
    state: str
    uuid: str | None
    updated_at: float
    payload: dict[str, Any] = field(default_factory=dict)


class InstanceTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[InstanceRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(instances)).all()
        return [InstanceRow(r.host, r.name, r.state, r.uuid, float(r.updated_at),
                            json.loads(r.payload or "{}")) for r in rows]

    def put(self, row: InstanceRow) -> None:
        """Store ``row`` in place of what the table held for its host and name."""
        with write_tx(self.engine) as conn:
            self._remove(conn, row.host, row.name)
            conn.execute(insert(instances), {
                "host": row.host, "name": row.name, "uuid": row.uuid, "state": row.state,
                "updated_at": row.updated_at, "payload": json.dumps(row.payload, default=str)})

    def remove(self, host: str, name: str) -> None:
        with write_tx(self.engine) as conn:
            self._remove(conn, host, name)

    @staticmethod
    def _remove(conn: Connection, host: str, name: str) -> None:
        conn.execute(delete(instances).where(instances.c.host == host,
                                             instances.c.name == name))
