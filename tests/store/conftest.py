"""Fixtures of the job store tests: real databases (SQLite files; PostgreSQL when one can
be started here), a local inventory (the real executor runs as a subprocess), templates.

Helpers live in ``store_helpers`` (tests import that, never ``conftest``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_helpers import postgres_url, running_server, unavailable
from store_helpers import write_templates

from control_server.store.jobstore import JobStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'hostplane.db'}"
    return postgres_url(request)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'hostplane.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[JobStore]:
    opened = JobStore.open(db_url)
    yield opened
    opened.close()


@pytest.fixture
def local_inv(tmp_path: Path) -> Path:
    inv = tmp_path / "local.ini"
    inv.write_text("[here]\nlocalhost ansible_connection=local\n")
    return inv


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return write_templates(tmp_path / "templates")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the whole session (started only if a test asks)."""
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL: {why}")
    with running_server() as url:
        yield url
