"""The ``host_facts`` table: each host's last facts, so a restart or another server knows
what any server gathered (``service.state`` writes them; ``hostplane hosts`` reads them).

    table = HostFactsTable(engine)
    table.merge("h1", {"memory": {...}}, gathered_at, job_id)   # a gather of some groups
    table.get("h1"); table.all()

Facts are a mapping of groups (``cpu``, ``memory``, ``disks``...). A gather of some groups
replaces those groups and keeps the others, as ``merge`` does in one transaction, so two
servers gathering different groups of one host at once both land.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from control_server.store.schema import host_facts
from control_server.store.tx import write_tx


@dataclass(frozen=True)
class HostFacts:
    host: str
    facts: dict[str, Any]
    gathered_at: float
    job_id: int | None = None


def _row(r: Any) -> HostFacts:
    return HostFacts(r.host, json.loads(r.facts or "{}"), float(r.gathered_at),
                     None if r.job_id is None else int(r.job_id))


class HostFactsTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[HostFacts]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(host_facts).order_by(host_facts.c.host))]

    def get(self, host: str) -> HostFacts | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(host_facts).where(host_facts.c.host == host)).first()
        return None if row is None else _row(row)

    def put(self, facts: HostFacts) -> None:
        """Store ``facts`` in place of whatever the host had."""
        with write_tx(self.engine) as conn:
            conn.execute(delete(host_facts).where(host_facts.c.host == facts.host))
            conn.execute(insert(host_facts), _values(facts))

    def merge(self, host: str, groups: dict[str, Any], gathered_at: float,
              job_id: int | None = None) -> HostFacts:
        """Replace the groups ``groups`` names and keep the host's others; returns what the
        host's facts now are."""
        with write_tx(self.engine) as conn:
            before = _locked(conn, host)
            merged = HostFacts(host, {**(before.facts if before else {}), **groups},
                               max(gathered_at, before.gathered_at if before else gathered_at),
                               job_id)
            conn.execute(update(host_facts).where(host_facts.c.host == host),
                         _values(merged))
        return merged


def _values(facts: HostFacts) -> dict[str, Any]:
    return {"host": facts.host, "facts": json.dumps(facts.facts, default=str),
            "gathered_at": facts.gathered_at, "job_id": facts.job_id}


def _locked(conn: Connection, host: str) -> HostFacts | None:
    """The host's row, locked for this transaction (made empty first if there was none, so
    two first gathers of one host wait on each other rather than both insert)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    placeholder = {"host": host, "facts": "{}", "gathered_at": 0.0, "job_id": None}
    conn.execute(dialect.insert(host_facts).values(placeholder)
                 .on_conflict_do_nothing(index_elements=["host"]))
    row = conn.execute(select(host_facts).where(host_facts.c.host == host)
                       .with_for_update()).one()
    return None if row.facts == "{}" and not row.gathered_at else _row(row)
