"""A lost connection never abandons work; only an explicit cancel stops it (real sshd).

Each test cuts the SSH session for real — the sshd processes serving it SIGKILLed, or
SIGSTOPped past the keepalive — or interrupts the CLI with SIGINT, and checks through a
marker file on the "host" that every step's side effect happened exactly once (or, when
cancelled, not at all).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from sshd_harness import LoopbackSSHD

HOSTPLANE = ".venv/bin/hostplane"


def _start(server: LoopbackSSHD, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([HOSTPLANE, "exec", *server.cli_args(), "all", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=server.env())


def _sessions(server: LoopbackSSHD) -> list[int]:
    return server.session_pids()


def _wait_for(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def _host_end(stdout: str) -> dict[str, object]:
    ends = [e for e in map(json.loads, stdout.splitlines()) if e.get("kind") == "host_end"]
    assert len(ends) == 1, stdout
    return ends[0]


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def test_killed_session_the_sequence_finishes_and_is_reattached(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    run = _start(server, "--shell", "--", f"echo start >> {marker}; sleep 2; echo once >> {marker}")
    _wait_for(marker, "start")
    sessions = _sessions(server)
    assert sessions
    _signal_all(sessions, signal.SIGKILL)  # the connection is gone: nobody reads the step
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err + out
    end = _host_end(out)
    assert end["status"] == "ok" and end["error_kind"] == "reattached", end
    assert marker.read_text() == "start\nonce\n"  # ran to its end, exactly once


def test_paused_past_the_keepalive_then_reattached(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    run = _start(server, "--keepalive", "0.5", "--shell", "--",
                 f"echo start >> {marker}; sleep 4; echo once >> {marker}")
    _wait_for(marker, "start")
    paused = _sessions(server)
    _signal_all(paused, signal.SIGSTOP)
    try:
        # 3 unanswered keepalives (1.5 s) lose the connection; a new one reattaches.
        out, err = run.communicate(timeout=90)
    finally:
        _signal_all(paused, signal.SIGCONT)
    assert run.returncode == 0, err + out
    end = _host_end(out)
    assert end["status"] == "ok" and end["error_kind"] == "reattached", end
    _wait_for(marker, "once")
    assert marker.read_text() == "start\nonce\n"


def test_abort_on_disconnect_stops_the_step(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    run = _start(server, "--on-disconnect", "abort", "--shell", "--",
                 f"echo start >> {marker}; sleep 3; echo late >> {marker}")
    _wait_for(marker, "start")
    _signal_all(_sessions(server), signal.SIGKILL)
    out, err = run.communicate(timeout=90)
    assert run.returncode == 2, err + out
    end = _host_end(out)
    assert end["status"] == "failed", end
    time.sleep(3.5)
    assert marker.read_text() == "start\n"  # cancelled on the host: never finished


def test_ctrl_c_cancels_on_the_host(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    run = _start(server, "--shell", "--", f"echo start >> {marker}; sleep 4; echo late >> {marker}")
    _wait_for(marker, "start")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err + out
    assert "Traceback" not in err
    executor_events = [e["event"]["event"] for e in map(json.loads, out.splitlines())
                       if e.get("kind") == "executor"]
    assert executor_events[-2:] == ["step_end", "done"], out  # the cancel's last events
    time.sleep(4.5)
    assert marker.read_text() == "start\n"  # the step was killed on the host


def test_ctrl_c_while_reattached_cancels_on_the_host(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    run = _start(server, "--shell", "--",
                 f"echo start >> {marker}; sleep 6; echo late >> {marker}")
    _wait_for(marker, "start")
    _signal_all(_sessions(server), signal.SIGKILL)  # detached; hostplane reattaches
    deadline = time.monotonic() + 20
    while len(_sessions(server)) == 0:  # the follower's new connection
        assert time.monotonic() < deadline, "never reattached"
        time.sleep(0.05)
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err + out
    dones = [e["event"] for e in map(json.loads, out.splitlines())
             if e.get("kind") == "executor" and e["event"]["event"] == "done"]
    assert len(dones) == 1 and dones[0]["interrupted"] is True, out
    time.sleep(6)
    assert marker.read_text() == "start\n"  # the cancel reached the detached executor


DIED_TEMPLATE = """{#
description: three steps; each sleeps, then appends its line to a marker file
params:
  marker: {required: true}
#}
steps:
  - name: one
    shell: {cmd: "sleep 0.5; echo one >> {{ marker }}"}
  - name: two
    shell: {cmd: "sleep 5; echo two >> {{ marker }}"}
  - name: three
    shell: {cmd: "echo three >> {{ marker }}"}
"""


def _kill_executor_and_its_steps(server: LoopbackSSHD) -> None:
    """What a host's OOM killer or crash does: the executor and its steps, SIGKILLed."""
    journals = list((server.home / ".cache" / "hostplane" / "journal").glob("*.jsonl"))
    assert len(journals) == 1
    pid = int(json.loads(journals[0].read_text().splitlines()[0])["pid"])
    steps = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    os.kill(pid, signal.SIGKILL)  # first: it must not live to see its step die
    for child in map(int, steps.stdout.split()):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child, signal.SIGKILL)


def test_an_executor_that_died_is_continued_from_its_first_unfinished_step(
        sshd_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    marker = server.home / "marker"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "died.yaml.j2").write_text(DIED_TEMPLATE)
    run = subprocess.Popen(
        [HOSTPLANE, "run", *server.cli_args(), "all", "died", "--templates", str(templates),
         "-e", f"marker={marker}", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())
    _wait_for(marker, "one")
    time.sleep(0.5)  # step two is running
    _kill_executor_and_its_steps(server)
    out, _ = run.communicate(timeout=60)
    end = _host_end(out)
    assert end["error_kind"] == "executor_died", end
    jobs = json.loads(subprocess.run([HOSTPLANE, "jobs", "list", "--json"], capture_output=True,
                                     text=True, env=server.env(), check=True).stdout.splitlines()[0])
    assert jobs["state"] == "interrupted", jobs
    resumed = subprocess.run([HOSTPLANE, "jobs", "resume", str(jobs["id"])],
                             capture_output=True, text=True, env=server.env(), timeout=90)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert marker.read_text() == "one\ntwo\nthree\n"  # step one was not run again
