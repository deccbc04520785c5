"""Host leases: exactly one control server watches each host's hypervisor events.

    got = acquire(engine, server_id, hosts, ttl=30)   # free or expired ones, now ours
    lost = renew(engine, server_id, got, ttl=30)      # the ones no longer ours
    release(engine, server_id, got)                    # at a clean stop
    holders(engine)                                    # {host: server} of live leases

A host's lease is held while its row names the server and ``lease_expires`` (the
database's clock, ``dbclock``) is ahead; a server that stops renewing (killed, paused, cut
off) loses its hosts after the TTL and the next ``acquire`` of another server takes them,
bumping ``fence``. An expired lease is lost even to its old holder: ``renew`` reports it,
and only an ``acquire`` takes it back.

First come takes: ``acquire`` takes every free host it is given, in one transaction. Hosts
are not spread over the servers: a takeover then completes in one round, and a server
whose inventory differs from the others' still has every host of its own watched.
Spreading would need a server to hand hosts over (a gap in each moved host's watch).

On PostgreSQL the expired rows are taken with ``SELECT … FOR UPDATE SKIP LOCKED`` (two
servers acquiring at once never wait on each other; each row goes to one) and rows for
hosts never leased are made with ``INSERT … ON CONFLICT DO NOTHING`` (the loser of a race
does not get it). On SQLite the write transaction (``BEGIN IMMEDIATE``) serializes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from control_server.store.dbclock import now_expr
from control_server.store.schema import host_leases
from control_server.store.tx import write_tx


def _insert_new(conn: Connection, server: str, hosts: list[str], ttl: float) -> set[str]:
    """Rows for the hosts that have none, ours; the hosts this made."""
    known = set(conn.execute(select(host_leases.c.host)
                             .where(host_leases.c.host.in_(hosts))).scalars())
    fresh = [h for h in hosts if h not in known]
    if not fresh:
        return set()
    now = now_expr(conn)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    made = conn.execute(
        dialect.insert(host_leases)
        .values([{"host": h, "owner": server, "lease_expires": now + ttl, "acquired_at": now,
                  "fence": 1} for h in fresh])
        .on_conflict_do_nothing(index_elements=["host"])
        .returning(host_leases.c.host))
    return set(made.scalars())


def _take_expired(conn: Connection, server: str, hosts: list[str], ttl: float) -> set[str]:
    """The hosts whose lease expired (whoever held it), now ours."""
    now = now_expr(conn)
    rows = conn.execute(
        select(host_leases.c.host)
        .where(host_leases.c.host.in_(hosts), host_leases.c.lease_expires <= now)
        .order_by(host_leases.c.host).with_for_update(skip_locked=True)).scalars().all()
    if not rows:
        return set()
    conn.execute(update(host_leases).where(host_leases.c.host.in_(rows))
                 .values(owner=server, lease_expires=now + ttl, acquired_at=now,
                         fence=host_leases.c.fence + 1))
    return set(rows)


def acquire(engine: Engine, server: str, hosts: Iterable[str], ttl: float) -> list[str]:
    """Take the lease of each of ``hosts`` that no server holds (never leased, released, or
    expired) for ``ttl`` seconds; the hosts taken, sorted. Hosts another server holds, and
    hosts this server already holds (``renew`` keeps those), are left as they are."""
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    with write_tx(engine) as conn:
        taken = _insert_new(conn, server, wanted, ttl) | _take_expired(conn, server, wanted,
                                                                       ttl)
    return sorted(taken)


def renew(engine: Engine, server: str, hosts: Iterable[str], ttl: float) -> list[str]:
    """Extend by ``ttl`` from now the leases of ``hosts`` this server still holds; the
    others (taken by another server, released, or expired) are returned: lost, sorted."""
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    with write_tx(engine) as conn:
        now = now_expr(conn)
        kept = set(conn.execute(
            update(host_leases)
            .where(host_leases.c.host.in_(wanted), host_leases.c.owner == server,
                   host_leases.c.lease_expires > now)
            .values(lease_expires=now + ttl).returning(host_leases.c.host)).scalars())
    return [h for h in wanted if h not in kept]


def release(engine: Engine, server: str, hosts: Iterable[str] | None = None) -> None:
    """Give up this server's leases of ``hosts`` (all of its leases when None): another
    server's next ``acquire`` takes them without waiting for the TTL."""
    where = host_leases.c.owner == server
    if hosts is not None:
        where = where & host_leases.c.host.in_(sorted(set(hosts)))
    with write_tx(engine) as conn:
        conn.execute(delete(host_leases).where(where))


def holders(engine: Engine) -> dict[str, str]:
    """{host: server} of the leases held now (expired ones left out)."""
    with engine.connect() as conn:
        rows = conn.execute(select(host_leases.c.host, host_leases.c.owner)
                            .where(host_leases.c.lease_expires > now_expr(conn))).all()
    return {r.host: r.owner for r in rows}
