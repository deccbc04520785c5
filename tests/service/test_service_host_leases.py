"""Two real ``serve`` processes on one real PostgreSQL: each inventory host's hypervisor
events are watched by exactly one of them (its host lease), and when that server is
SIGKILLed the other takes every host within the lease TTL (``HOSTPLANE_LEASE_TTL=3``)
and watches it: its ``/v1/hosts`` starts seeing the hosts (``last_seen``, set by the
watch's ``domain_list`` and heartbeats, on libvirt's test driver). A clean stop releases
the leases."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import Server, create_token, start_server
from sqlalchemy import Engine, select

from control_server.store import hostleases
from control_server.store.engine import make_engine
from control_server.store.schema import host_leases, servers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from pg_helpers import new_database, running_server, unavailable

TTL = 3.0
HOSTS = ["h1", "h2", "h3"]
SYSTEM_PY = "/usr/bin/python3"  # Debian's, with python3-libvirt for the test driver


def _has_libvirt() -> bool:
    try:
        return subprocess.run([SYSTEM_PY, "-c", "import libvirt"], check=False,
                              capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[str]:
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL: {why}")
    with running_server() as url:
        yield url


def write_inventory(path: Path) -> Path:
    """Local hosts whose watch opens libvirt's test driver (one running domain, "test")."""
    line = f"ansible_connection=local ansible_python_interpreter={SYSTEM_PY} " \
           "libvirt_uri=test:///default"
    path.write_text("[kvm]\n" + "".join(f"{h} {line}\n" for h in HOSTS))
    return path


def fences(engine: Engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        return {r.host: (r.owner, int(r.fence)) for r in conn.execute(
            select(host_leases.c.host, host_leases.c.owner, host_leases.c.fence))}


def server_id(engine: Engine, server: Server) -> str:
    """The ``servers.id`` of a serve process (its pid is in the row)."""
    with engine.connect() as conn:
        return str(conn.execute(select(servers.c.id)
                                .where(servers.c.pid == server.proc.pid)).scalar_one())


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``check()``; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def seen(server: Server, token: str) -> dict[str, float | None]:
    with server.client(token) as client:
        hosts = client.get("/v1/hosts").json()["hosts"]
    return {h["name"]: h["last_seen"] for h in hosts}


def test_one_server_watches_each_host_and_the_other_takes_over_on_kill(
        pg_admin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _has_libvirt():
        pytest.skip("Debian's python3-libvirt is not installed (the watch's test driver)")
    monkeypatch.setenv("HOSTPLANE_LEASE_TTL", f"{TTL:g}")  # serve inherits it
    db = new_database(pg_admin)
    inventory = write_inventory(tmp_path / "hosts.ini")
    token = create_token(db, "dash", "reader")
    engine = make_engine(db)
    first = start_server(tmp_path, inventory, db, "--no-facts", facts=False)
    second: Server | None = None
    try:
        a = server_id(engine, first)
        wait(lambda: hostleases.holders(engine) == dict.fromkeys(HOSTS, a), 30, "a's leases")
        wait(lambda: all(seen(first, token).values()), 30, "a watching every host")
        second = start_server(tmp_path, inventory, db, "--no-facts", facts=False)
        b = server_id(engine, second)
        time.sleep(TTL)  # three rounds of each: a renews, b finds nothing free
        assert hostleases.holders(engine) == dict.fromkeys(HOSTS, a)
        assert seen(second, token) == dict.fromkeys(HOSTS)  # b watches none of them
        assert "host leases taken" not in second.logs()

        first.kill()
        took = wait(lambda: hostleases.holders(engine) == dict.fromkeys(HOSTS, b),
                    TTL + 5, "b taking every host")
        assert fences(engine) == {h: (b, 2) for h in HOSTS}  # taken over, not new rows
        wait(lambda: all(seen(second, token).values()), 15, "b watching every host")
        assert f"host leases taken: {', '.join(HOSTS)}" in second.logs()
        print(f"takeover of {len(HOSTS)} hosts {took:.1f} s after the SIGKILL (TTL {TTL:g})")

        second.stop()
        assert "Application shutdown complete" in second.logs()
        assert fences(engine) == {}  # released at the clean stop
    finally:
        first.stop()
        if second is not None:
            second.stop()
        engine.dispose()
