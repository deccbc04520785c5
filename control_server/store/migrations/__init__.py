"""Alembic migrations of the job store, run programmatically (``store.migrate.upgrade``).

A new revision, from the repo root (autogenerate compares with ``store.schema``)::

    .venv/bin/python -m control_server.store.migrate revision -m "add a column" --autogenerate
"""
