"""Running the Alembic migrations programmatically: every ``JobStore.open`` upgrades.

Alembic is imported only when a database needs upgrading: opening an up-to-date store
reads ``alembic_version`` with one query (importing Alembic costs about as much as
SQLAlchemy itself). ``SCHEMA_REVISION`` must name the newest revision (a test checks).

    python -m control_server.store.migrate upgrade [--url URL]
    python -m control_server.store.migrate revision -m "what changes" [--autogenerate]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from control_server.store.engine import WRITE, make_engine
from control_server.store.revision import SCHEMA_REVISION as SCHEMA_REVISION
from control_server.store.rows import default_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    # Folder names split on os.pathsep only (a path with a space stays one path).
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a new database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no alembic_version table yet


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; one read when it is at ``SCHEMA_REVISION``."""
    if revision == "head" and current_revision(engine) == SCHEMA_REVISION:
        return
    from alembic import command

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
        from alembic import command

        upgrade(engine)
        config = alembic_config()
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            config.attributes["connection"] = conn
            command.revision(config, message=args.message, autogenerate=args.autogenerate)


if __name__ == "__main__":
    _main()
