"""The job queue and its leases: which control server runs which job, and until when.

    enqueue(engine, job_id)
    lease = claim_next(engine, server_id, ttl=30)     # None when nothing is claimable
    renew(engine, server_id, [lease], ttl=30)         # keeps what is still ours
    with fenced_write(engine, lease) as conn: ...     # refused once a newer claim holds it
    release(engine, lease)                            # done; requeue=True gives it back

A job is claimable when it is ``queued`` or its lease has expired (its holder stopped
renewing: killed, paused, cut off from the database). Every claim bumps the job's
``fence`` in the claiming transaction, so the token only grows, and every write a holder
makes checks its token against the row it locks first: a holder that wakes up after its
lease was taken finds a bigger token and gets ``LeaseLost``, with nothing of its write
stored.

On PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``: servers claiming at once
each lock a different row and never wait on each other. SQLite ignores ``FOR UPDATE``;
there the write transaction (``BEGIN IMMEDIATE``) serializes claims, which is enough for
the one server a SQLite store allows (``servers.register``). Times are the database's
clock (``dbclock``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, and_, bindparam, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from control_server.errors import HostplaneError
from control_server.store.dbclock import now_expr
from control_server.store.schema import job_queue, servers
from control_server.store.tx import write_tx

QUEUED = "queued"
CLAIMED = "claimed"
DONE = "done"

# Locks the job's queue row for the rest of the transaction: a claim (which must lock it
# too, to bump the token) waits or skips it until the guarded write has committed.
_GUARD = (select(job_queue.c.fence, job_queue.c.state, job_queue.c.owner)
          .where(job_queue.c.job_id == bindparam("job")).with_for_update())


@dataclass(frozen=True)
class Lease:
    """A claim on a job: ``token`` is the fencing token every write for the job carries."""

    job: int
    server: str
    token: int
    expires: float  # the database's clock
    previous_owner: str | None = None  # set when this claim took over an expired lease
    # This process's monotonic clock: the lease is surely held until then (ttl counted
    # from before the claim or renewal was sent), whatever the clocks and the database do.
    deadline: float = 0.0

    def lapsed(self, now: float | None = None) -> bool:
        """Whether the holder must behave as if the lease were lost (no more steps sent)
        because no renewal succeeded in time, even before anyone else claims the job."""
        return (time.monotonic() if now is None else now) >= self.deadline


@dataclass(frozen=True)
class LeaseInfo:
    """A job's queue row as it is now."""

    job: int
    state: str
    owner: str | None
    token: int
    expires: float | None
    expired: bool  # claimed, and the lease's expiry has passed


class LeaseLost(HostplaneError):
    """A write for ``job`` carried ``token`` while the job is held by ``current`` (or is not
    claimed any more): the write was refused, nothing of it stored."""

    def __init__(self, job: int, token: int, current: int | None, owner: str | None = None,
                 state: str | None = None) -> None:
        if current is None:
            why = "the job is not in the queue"
        elif current != token:
            why = f"server {owner} holds it now with token {current}"
        else:
            why = f"the job is {state}, no longer claimed"
        super().__init__(f"job {job}: lease with fencing token {token} lost ({why}); the "
                         "write was refused")
        self.job = job
        self.token = token
        self.current = current


def guard(conn: Connection, lease: Lease) -> None:
    """Raise ``LeaseLost`` unless ``lease`` still holds its job; lock the job's queue row
    until ``conn``'s transaction ends, so no claim can slip in before it commits."""
    row = conn.execute(_GUARD, {"job": lease.job}).first()
    if row is None or int(row.fence) != lease.token or row.state != CLAIMED:
        raise LeaseLost(lease.job, lease.token, None if row is None else int(row.fence),
                        None if row is None else row.owner, None if row is None else row.state)


@contextmanager
def fenced_write(engine: Engine, lease: Lease) -> Iterator[Connection]:
    """A write transaction for ``lease``'s job, refused (``LeaseLost``) up front when a
    newer claim holds the job; whatever the caller writes on it commits only with the
    lease still held."""
    with write_tx(engine) as conn:
        guard(conn, lease)
        yield conn


def enqueue(engine: Engine, job_id: int) -> None:
    """Put an existing job on the queue (``queued``, token 0)."""
    with write_tx(engine) as conn:
        now = now_expr(conn)
        conn.execute(insert(job_queue).values(job_id=job_id, state=QUEUED, enqueued_at=now,
                                              fence=0))


def _claimable(conn: Connection) -> ColumnElement[bool]:
    return or_(job_queue.c.state == QUEUED,
               and_(job_queue.c.state == CLAIMED, job_queue.c.lease_expires <= now_expr(conn)))


def _take(conn: Connection, job_id: int | None, server: str, ttl: float,
          sent: float) -> Lease | None:
    pick = (select(job_queue.c.job_id, job_queue.c.state, job_queue.c.owner)
            .where(_claimable(conn))
            .order_by(job_queue.c.enqueued_at, job_queue.c.job_id).limit(1)
            .with_for_update(skip_locked=True))
    if job_id is not None:
        pick = pick.where(job_queue.c.job_id == job_id)
    row = conn.execute(pick).first()
    if row is None:
        return None
    now = now_expr(conn)
    claimed = conn.execute(
        update(job_queue).where(job_queue.c.job_id == row.job_id)
        .values(state=CLAIMED, owner=server, lease_expires=now + ttl,
                fence=job_queue.c.fence + 1, claimed_at=now)
        .returning(job_queue.c.fence, job_queue.c.lease_expires)
    ).one()
    previous = row.owner if row.state == CLAIMED else None
    return Lease(int(row.job_id), server, int(claimed.fence), float(claimed.lease_expires),
                 previous, sent + ttl)


def claim_next(engine: Engine, server: str, ttl: float) -> Lease | None:
    """Claim the oldest claimable job (queued, or its lease expired) for ``ttl`` seconds;
    None when there is none (or every candidate is being claimed by another server)."""
    sent = time.monotonic()
    with write_tx(engine) as conn:
        return _take(conn, None, server, ttl, sent)


def claim(engine: Engine, job_id: int, server: str, ttl: float) -> Lease | None:
    """Claim one given job if it is claimable (``jobs resume``, a takeover); else None."""
    sent = time.monotonic()
    with write_tx(engine) as conn:
        return _take(conn, job_id, server, ttl, sent)


def renew(engine: Engine, server: str, leases: Iterable[Lease], ttl: float
          ) -> tuple[list[Lease], list[Lease]]:
    """Extend each lease that still holds its job by ``ttl`` from now, and the server's
    heartbeat; (renewed leases with their new expiry, lost leases)."""
    renewed: list[Lease] = []
    lost: list[Lease] = []
    sent = time.monotonic()
    with write_tx(engine) as conn:
        now = now_expr(conn)
        conn.execute(update(servers).where(servers.c.id == server).values(heartbeat_at=now))
        for lease in leases:
            expires = conn.execute(
                update(job_queue)
                .where(job_queue.c.job_id == lease.job, job_queue.c.fence == lease.token,
                       job_queue.c.state == CLAIMED)
                .values(lease_expires=now + ttl).returning(job_queue.c.lease_expires)
            ).scalar_one_or_none()
            if expires is None:
                lost.append(lease)
            else:
                renewed.append(replace(lease, expires=float(expires), deadline=sent + ttl))
    return renewed, lost


def release(engine: Engine, lease: Lease, requeue: bool = False) -> None:
    """The holder is done with the job (``requeue``: gives it back for another server to
    claim, as a server stopping cleanly does). ``LeaseLost`` if it no longer holds it."""
    with fenced_write(engine, lease) as conn:
        conn.execute(update(job_queue).where(job_queue.c.job_id == lease.job)
                     .values(state=QUEUED if requeue else DONE, owner=None,
                             lease_expires=None))


def _info(conn: Connection, where: ColumnElement[bool]) -> list[LeaseInfo]:
    now = now_expr(conn)
    rows = conn.execute(
        select(job_queue.c.job_id, job_queue.c.state, job_queue.c.owner, job_queue.c.fence,
               job_queue.c.lease_expires,
               and_(job_queue.c.state == CLAIMED,
                    job_queue.c.lease_expires <= now).label("expired"))
        .where(where).order_by(job_queue.c.job_id)
    ).all()
    return [LeaseInfo(int(r.job_id), r.state, r.owner, int(r.fence), r.lease_expires,
                      bool(r.expired)) for r in rows]


def lease_of(engine: Engine, job_id: int) -> LeaseInfo | None:
    """The job's queue row; None when the job was never queued."""
    with engine.connect() as conn:
        found = _info(conn, job_queue.c.job_id == job_id)
    return found[0] if found else None


def expired(engine: Engine) -> list[LeaseInfo]:
    """Claimed jobs whose lease has expired: their holder is gone or stuck, and the next
    ``claim_next`` takes them over (with a bigger token)."""
    with engine.connect() as conn:
        return _info(conn, and_(job_queue.c.state == CLAIMED,
                                job_queue.c.lease_expires <= now_expr(conn)))
