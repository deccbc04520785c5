"""Serve registers itself in the store's server registry: a second ``serve`` on one SQLite
store is refused (exit 1, the message naming the store and PostgreSQL, no traceback) while
the first lives; once the first is SIGKILLed, a new one starts (its pid is gone), and a
clean stop leaves no row behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service_helpers import cli, free_port, start_server, write_inventory, write_templates

ARGS = ("--no-facts", "--no-watch")


def _rows(db_file: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db_file) as conn:
        return conn.execute("SELECT id, pid FROM servers").fetchall()


def test_second_serve_on_sqlite_is_refused_until_the_first_is_dead(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "hosts.ini", free_port())
    templates = write_templates(tmp_path / "templates")
    db_file = tmp_path / "hostplane.db"
    db = f"sqlite:///{db_file}"
    args = ("--templates", str(templates), *ARGS)
    first = start_server(tmp_path, inventory, db, *args, facts=False)
    try:
        assert [pid for _, pid in _rows(db_file)] == [first.proc.pid]
        second = cli("serve", "-i", str(inventory), "--db", db, "--listen",
                     f"127.0.0.1:{free_port()}", *args)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another hostplane serve uses this SQLite store" in second.stderr
        assert str(db_file) in second.stderr and "PostgreSQL" in second.stderr
        assert f"pid {first.proc.pid}" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        first.kill()
    finally:
        first.stop()

    third = start_server(tmp_path, inventory, db, *args, facts=False)
    try:
        assert [pid for _, pid in _rows(db_file)] == [third.proc.pid]  # the dead row went
    finally:
        third.stop()
    assert "Application shutdown complete" in third.logs()
    assert _rows(db_file) == []  # unregistered at the clean stop
