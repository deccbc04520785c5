"""serve's warm connections against a real sshd on loopback (``LoopbackSSHD``): requests
to a host reuse its one connection (counted in sshd's log), a pooled connection whose sshd
processes are SIGKILLed is replaced on the next request, a connection lost mid-sequence is
reattached through the pool, and an idle connection is closed after ``--idle-close``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Server, create_token, start_server, wait_for_job, write_templates

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from sshd_harness import LoopbackSSHD, have_sshd

ACCEPTED = "Accepted publickey"


def _kill_sessions(server: LoopbackSSHD) -> None:
    pids = server.session_pids()
    assert pids, "no sshd session to kill"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _handshakes(server: LoopbackSSHD) -> int:
    return server.log.read_text(errors="replace").count(ACCEPTED)


class Warm:
    def __init__(self, sshd: LoopbackSSHD, server: Server, token: str) -> None:
        self.sshd, self.server, self.token = sshd, server, token

    def request(self, target: str = "node01", seconds: int = 0, wait: float = 60
                ) -> dict[str, Any]:
        with self.server.client(self.token, timeout=wait + 30) as client:
            response = client.post("/v1/requests", params={"wait": wait}, json={
                "template": "steps3", "target": target, "vars": {"seconds": seconds}})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job


def _start(tmp: Path, net: int, *extra: str) -> Iterator[Warm]:
    if not have_sshd():
        pytest.skip("needs root and /usr/sbin/sshd (scripts/bootstrap.sh installs openssh-server)")
    sshd = LoopbackSSHD(tmp / "sshd", count=2, net=net).start()
    try:
        templates = write_templates(tmp / "templates")
        db = f"sqlite:///{tmp / 'state' / 'hostplane.db'}"
        token = create_token(db, "ops", "operator")
        server = start_server(tmp, sshd.inventory, db, "--templates", str(templates),
                              "-F", str(sshd.ssh_config), "--known-hosts",
                              str(sshd.known_hosts), "--no-facts", "--no-watch", *extra,
                              facts=False)
        try:
            yield Warm(sshd, server, token)
        finally:
            server.stop()
    finally:
        sshd.stop()


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[Warm]:
    yield from _start(tmp_path, 200 + os.getpid() % 40)


@pytest.fixture
def warm_idle(tmp_path: Path) -> Iterator[Warm]:
    yield from _start(tmp_path, 160 + os.getpid() % 40, "--idle-close", "1")


def _ok(job: dict[str, Any]) -> None:
    assert job["state"] == "succeeded", job
    assert all(h["state"] == "ok" for h in job["hosts"]), job


def test_requests_to_a_warm_host_reuse_its_connection(warm: Warm) -> None:
    _ok(warm.request())
    assert _handshakes(warm.sshd) == 1
    for _ in range(3):
        _ok(warm.request())
    _ok(warm.request("node01:node02"))
    assert _handshakes(warm.sshd) == 2  # one per host, whatever the number of requests


def test_a_killed_pooled_connection_is_replaced_on_the_next_request(warm: Warm) -> None:
    _ok(warm.request())
    _kill_sessions(warm.sshd)
    time.sleep(0.2)
    job = warm.request()
    _ok(job)
    assert job["hosts"][0]["error_kind"] is None  # transparent: no reattach, no error
    assert _handshakes(warm.sshd) == 2
    _ok(warm.request())
    assert _handshakes(warm.sshd) == 2  # and the new one is warm in its turn


def test_a_connection_lost_mid_sequence_is_reattached_through_the_pool(warm: Warm) -> None:
    _ok(warm.request())  # warm
    with warm.server.client(warm.token) as client:
        response = client.post("/v1/requests", json={
            "template": "steps3", "target": "node01", "vars": {"seconds": 3}})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        wait_for_job(client, job_id, ("running",))
        deadline = time.monotonic() + 20
        while "sleep 3" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                              text=True).stdout:
            assert time.monotonic() < deadline, "the sleep step never started"
            time.sleep(0.05)
        _kill_sessions(warm.sshd)  # the executor detaches and goes on
        job = wait_for_job(client, job_id, ("succeeded", "failed", "interrupted"), timeout=90)
    _ok(job)
    assert job["hosts"][0]["error_kind"] == "reattached", job
    assert [s["name"] for s in job["hosts"][0]["steps"]] == ["hello", "sleep", "bye"]
    handshakes = _handshakes(warm.sshd)
    assert handshakes == 2  # the reattach's fresh connection
    _ok(warm.request())
    assert _handshakes(warm.sshd) == handshakes  # which the next request reuses


def test_an_idle_connection_is_closed_after_idle_close(warm_idle: Warm) -> None:
    _ok(warm_idle.request())
    _ok(warm_idle.request())
    assert _handshakes(warm_idle.sshd) == 1
    assert warm_idle.sshd.session_pids()  # the connection is open, waiting
    deadline = time.monotonic() + 15
    while warm_idle.sshd.session_pids():  # closed by serve: sshd's session ends
        assert time.monotonic() < deadline, "the idle connection was not closed"
        time.sleep(0.1)
    _ok(warm_idle.request())
    assert _handshakes(warm_idle.sshd) == 2
