"""A throwaway PostgreSQL server for the store tests, when this machine can start one.

Needs the server binaries (Debian's ``postgresql``), a ``postgres`` user to run it as (it
refuses root) and the ``psycopg`` driver; otherwise the PostgreSQL cases are skipped. The
server listens only on a Unix socket in a temporary folder; every test gets a new
database in it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return []
    return ["runuser", "-u", "postgres", "--"]


def unavailable() -> str | None:
    """Why no PostgreSQL can be started here (None if one can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed"
    if _bin_dir() is None:
        return "no PostgreSQL server binaries (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and not _as_user():
        return "running as root and there is no postgres user to run the server as"
    return None


@contextmanager
def running_server() -> Iterator[str]:
    """Start a server; yield the URL of its ``postgres`` database; stop it."""
    bindir = _bin_dir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="hostplane-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    user = _as_user()
    if user:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    subprocess.run([*user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust", "--no-sync"], **run)  # type: ignore[call-overload]
    options = f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off"
    subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                    "-l", str(root / "log"), "start"], **run)  # type: ignore[call-overload]
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    finally:
        subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """Create an empty database on the server; its URL."""
    import psycopg

    host = admin_url.split("host=", 1)[1]
    name = "hp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=host, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.replace("/postgres?", f"/{name}?")


def postgres_url(request: pytest.FixtureRequest) -> str:
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL: {why}")
    admin: str = request.getfixturevalue("pg_server")
    return new_database(admin)


def restart_server(admin_url: str, down_for: float = 0.0,
                   while_down: Callable[[], None] | None = None) -> None:
    """Restart the server ``running_server`` gave ``admin_url`` for, as an administrator
    does: a fast shutdown (every session is ended, its open transaction rolled back),
    ``while_down()`` and ``down_for`` seconds with nothing listening, then a start;
    returns once it accepts connections again."""
    import time

    bindir = _bin_dir()
    assert bindir is not None
    sock = Path(admin_url.split("host=", 1)[1])
    root = sock.parent
    user = _as_user()
    pg_ctl = [*user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-w"]
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    subprocess.run([*pg_ctl, "-m", "fast", "stop"], **run)  # type: ignore[call-overload]
    try:
        if while_down is not None:
            while_down()
        time.sleep(down_for)
    finally:
        options = f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(root / "log"), "start"],
                       **run)  # type: ignore[call-overload]
