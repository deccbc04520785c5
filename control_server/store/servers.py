"""The control servers using a store: registered at start, heartbeating, gone at stop.

    me = register(engine)            # SecondServerOnSQLite if another live serve uses it
    heartbeat(engine, me.id)         # (queue.renew heartbeats too)
    unregister(engine, me.id)

A SQLite store serves one control server: leases there are serialized by the file's write
lock, not shared, so a second ``serve`` is refused while the first is alive. A server is
alive while its heartbeat is fresh; on the same machine also only while its process runs
(pid and start time), so a SIGKILLed server does not block the next one until its
heartbeat goes stale. Rows of dead servers are removed at each registration.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from control_server.errors import HostplaneError
from control_server.store import owner as owners
from control_server.store.dbclock import now_expr, read_now
from control_server.store.schema import servers
from control_server.store.tx import write_tx

STALE_AFTER = 30.0  # seconds without a heartbeat after which a server counts as gone


@dataclass(frozen=True)
class ServerRecord:
    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float


class SecondServerOnSQLite(HostplaneError):
    """Another live ``serve`` uses this SQLite store."""

    def __init__(self, url: str, other: ServerRecord, now: float) -> None:
        super().__init__(
            f"{url}: another hostplane serve uses this SQLite store (server {other.id}, pid "
            f"{other.pid} on {other.hostname}, last heartbeat {now - other.heartbeat_at:.0f} s "
            "ago). A SQLite store serves one control server; to run several, give them one "
            "PostgreSQL store (--db postgresql+psycopg://USER@HOST/DB or HOSTPLANE_DB)")
        self.other = other


def _record(row: Row[Any]) -> ServerRecord:
    return ServerRecord(row.id, row.hostname, int(row.pid), float(row.started_at),
                        float(row.heartbeat_at))


def _alive(row: Row[Any], now: float, stale_after: float) -> bool:
    heartbeat = float(row.heartbeat_at)
    if now - heartbeat >= stale_after:
        return False
    if row.hostname != owners.current().host:
        return True
    who = owners.Owner(row.hostname, int(row.pid), row.boot or "", row.proc_start or "")
    return owners.is_alive(who, heartbeat, now)


def _others(conn: Connection, stale_after: float) -> tuple[list[ServerRecord], float]:
    """The live servers registered (dead ones' rows deleted); the database's now."""
    now = read_now(conn)
    live: list[ServerRecord] = []
    for row in conn.execute(select(servers)).all():
        if _alive(row, now, stale_after):
            live.append(_record(row))
        else:
            conn.execute(delete(servers).where(servers.c.id == row.id))
    return live, now


def register(engine: Engine, stale_after: float = STALE_AFTER) -> ServerRecord:
    """Register this process as a control server of the store; on SQLite, refused with
    ``SecondServerOnSQLite`` while another one is alive. One transaction: two servers
    starting at once on SQLite cannot both pass the check."""
    me = owners.current()
    server_id = f"{me.host[:60]}-{me.pid}-{secrets.token_hex(4)}"
    with write_tx(engine) as conn:
        live, now = _others(conn, stale_after)
        if live and conn.dialect.name == "sqlite":
            url = engine.url.render_as_string(hide_password=True)
            raise SecondServerOnSQLite(url, live[0], now)
        conn.execute(insert(servers).values(
            id=server_id, hostname=me.host, pid=os.getpid(), boot=me.boot,
            proc_start=me.start, started_at=now, heartbeat_at=now))
    return ServerRecord(server_id, me.host, os.getpid(), now, now)


def heartbeat(engine: Engine, server_id: str) -> bool:
    """Say the server is alive; False if its row is gone (it was taken for dead)."""
    with write_tx(engine) as conn:
        done = conn.execute(update(servers).where(servers.c.id == server_id)
                            .values(heartbeat_at=now_expr(conn)))
        return bool(done.rowcount)


def unregister(engine: Engine, server_id: str) -> None:
    with write_tx(engine) as conn:
        conn.execute(delete(servers).where(servers.c.id == server_id))


def live_servers(engine: Engine, stale_after: float = STALE_AFTER) -> list[ServerRecord]:
    """The servers alive now (rows of dead ones are removed)."""
    with write_tx(engine) as conn:
        return _others(conn, stale_after)[0]
