"""The ``tokens`` table: API tokens' names, roles and hashes (``service.tokens`` makes and
checks the tokens; it never builds SQL itself)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine as Engine  # re-exported: the service names the type from here
from sqlalchemy import delete, insert, select, update

from control_server.store.schema import tokens
from control_server.store.tx import write_tx


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    hash: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class NameInUse(Exception):
    """An active (not revoked) token has this name."""


class TokenTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, role: str, hashed: str) -> int:
        """A new row for ``name`` replacing a revoked one of that name; its id.
        ``NameInUse`` while an active token has the name (checked in the same write
        transaction as the insert)."""
        with write_tx(self.engine) as conn:
            row = conn.execute(select(tokens.c.revoked_at).where(tokens.c.name == name)).first()
            if row is not None and row.revoked_at is None:
                raise NameInUse(name)
            conn.execute(delete(tokens).where(tokens.c.name == name))
            token_id = conn.execute(
                insert(tokens).returning(tokens.c.id),
                {"name": name, "role": role, "hash": hashed, "created_at": time.time()},
            ).scalar_one()
        return int(token_id)

    def revoke(self, name: str) -> bool:
        """False when no active token has that name."""
        with write_tx(self.engine) as conn:
            done = conn.execute(
                update(tokens).where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return bool(done.rowcount)

    def all(self) -> list[TokenRow]:
        """Every token, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.name)).all()
        return [TokenRow(int(r.id), r.name, r.role, r.hash, r.created_at, r.last_used_at,
                         r.revoked_at) for r in rows]

    def get(self, token_id: int) -> TokenRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        if r is None:
            return None
        return TokenRow(int(r.id), r.name, r.role, r.hash, r.created_at, r.last_used_at,
                        r.revoked_at)

    def touch(self, token_id: int, now: float) -> None:
        """Record a use (callers do it at most every so often: it is a write)."""
        with write_tx(self.engine) as conn:
            conn.execute(update(tokens).where(tokens.c.id == token_id)
                         .values(last_used_at=now))
