"""Capacity claims: what placements hold of each host, shared by every control server.

    claim = claim_capacity(engine, ["h1", "h2"], decide, lease)   # None: nothing fits
    release_capacity(engine, claim.id)

``claim_capacity`` makes the placement decision and its claim one transaction: it locks
the candidate hosts (in name order, so two placements never deadlock), reads what is held
on them, asks ``decide`` for a choice with those figures, and inserts the claim before
the locks go. Two servers can therefore never both take the last 10 GiB of a host. On
PostgreSQL the locks are transaction advisory locks on the host names; SQLite's write
transaction already serializes every placement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, select, update

from control_server.store.queue import Lease, guard
from control_server.store.schema import capacity_claims
from control_server.store.tx import write_tx

HELD = "held"
RELEASED = "released"


@dataclass(frozen=True)
class Usage:
    """What the held claims on one host add up to."""

    memory_mib: int = 0
    vcpus: int = 0
    disk_gib: int = 0


@dataclass(frozen=True)
class Choice:
    """What ``decide`` picked: the host, and what the instance takes of it."""

    host: str
    instance: str
    memory_mib: int
    vcpus: int
    disk_gib: int = 0


@dataclass(frozen=True)
class CapacityClaim:
    id: int
    host: str
    job: int | None
    instance: str
    memory_mib: int
    vcpus: int
    disk_gib: int
    state: str


def _lock_hosts(conn: Connection, hosts: Iterable[str]) -> None:
    if conn.dialect.name != "postgresql":
        return
    for host in sorted(set(hosts)):
        # A hash collision only makes two hosts' placements wait for each other.
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(host, 0))))


def _usage(conn: Connection, hosts: Iterable[str]) -> dict[str, Usage]:
    wanted = sorted(set(hosts))
    rows = conn.execute(
        select(capacity_claims.c.host, func.sum(capacity_claims.c.memory_mib),
               func.sum(capacity_claims.c.vcpus), func.sum(capacity_claims.c.disk_gib))
        .where(capacity_claims.c.state == HELD, capacity_claims.c.host.in_(wanted))
        .group_by(capacity_claims.c.host)
    ).all()
    usage = {host: Usage() for host in wanted}
    for host, memory, vcpus, disk in rows:
        usage[host] = Usage(int(memory or 0), int(vcpus or 0), int(disk or 0))
    return usage


def claim_capacity(engine: Engine, hosts: Iterable[str],
                   decide: Callable[[Mapping[str, Usage]], Choice | None],
                   lease: Lease | None = None) -> CapacityClaim | None:
    """Decide and claim in one transaction (see the module docstring); None when
    ``decide`` finds nothing fits. With ``lease``, the claim is for its job and refused
    (``queue.LeaseLost``, nothing claimed) once a newer claim holds that job."""
    candidates = list(hosts)
    with write_tx(engine) as conn:
        if lease is not None:
            guard(conn, lease)
        _lock_hosts(conn, candidates)
        choice = decide(_usage(conn, candidates))
        if choice is None:
            return None
        if choice.host not in candidates:
            raise ValueError(f"placement chose {choice.host!r}, not one of the candidates")
        job = lease.job if lease is not None else None
        claim_id = conn.execute(insert(capacity_claims).returning(capacity_claims.c.id), {
            "host": choice.host, "job_id": job, "instance": choice.instance,
            "memory_mib": choice.memory_mib, "vcpus": choice.vcpus,
            "disk_gib": choice.disk_gib, "state": HELD, "created_at": time.time(),
        }).scalar_one()
    return CapacityClaim(int(claim_id), choice.host, job, choice.instance, choice.memory_mib,
                         choice.vcpus, choice.disk_gib, HELD)


def release_capacity(engine: Engine, claim_id: int, lease: Lease | None = None) -> bool:
    """The instance is gone (or its job failed before it): its claim no longer counts.
    False when it was released already."""
    with write_tx(engine) as conn:
        if lease is not None:
            guard(conn, lease)
        done = conn.execute(
            update(capacity_claims)
            .where(capacity_claims.c.id == claim_id, capacity_claims.c.state == HELD)
            .values(state=RELEASED, released_at=time.time())
        )
        return bool(done.rowcount)


def usage(engine: Engine, hosts: Iterable[str]) -> dict[str, Usage]:
    """What is held on each of ``hosts`` now (zero for a host with no claims)."""
    with engine.connect() as conn:
        return _usage(conn, hosts)


def claims(engine: Engine, host: str | None = None, held_only: bool = True
           ) -> list[CapacityClaim]:
    query = select(capacity_claims).order_by(capacity_claims.c.id)
    if host is not None:
        query = query.where(capacity_claims.c.host == host)
    if held_only:
        query = query.where(capacity_claims.c.state == HELD)
    with engine.connect() as conn:
        return [CapacityClaim(int(r.id), r.host, r.job_id, r.instance, int(r.memory_mib),
                              int(r.vcpus), int(r.disk_gib), r.state)
                for r in conn.execute(query)]
