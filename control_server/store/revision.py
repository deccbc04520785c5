"""The schema revision this code writes: its own module so the CLI's lean SQLite writer
(``store.sqlite_writer``) reads it without importing SQLAlchemy (``migrate`` does)."""

from __future__ import annotations

SCHEMA_REVISION = "0004"  # the newest migration in migrations/versions (a test checks)
