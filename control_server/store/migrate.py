"""Running the Alembic migrations programmatically: every ``JobStore.open`` upgrades.

    python -m control_server.store.migrate upgrade [--url URL]
    python -m control_server.store.migrate revision -m "what changes" [--autogenerate]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from control_server.store.engine import WRITE, default_url, make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; a no-op (one read) when it is there already."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    config = alembic_config()
    # One write transaction for the whole upgrade: two processes opening a new database at
    # once serialize here, and the second finds it already migrated.
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m control_server.store.migrate")
    parser.add_argument("action", choices=("upgrade", "revision", "current"))
    parser.add_argument("--url", default=None)
    parser.add_argument("-m", "--message", default="")
    parser.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args()
    engine = make_engine(args.url or default_url())
    if args.action == "upgrade":
        upgrade(engine)
    elif args.action == "current":
        print(current_revision(engine))
    else:
        upgrade(engine)
        config = alembic_config()
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            config.attributes["connection"] = conn
            command.revision(config, message=args.message, autogenerate=args.autogenerate)


if __name__ == "__main__":
    _main()
