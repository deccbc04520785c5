"""Alembic's environment: always handed an open connection by ``store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from control_server.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("hostplane migrations run through control_server.store.migrate")
_run(connection)
