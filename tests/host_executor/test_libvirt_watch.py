"""``--watch-domains``: the host event dispatcher, on libvirt's test driver."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PY = "/usr/bin/python3"


def _has_libvirt() -> bool:
    try:
        return subprocess.run([SYSTEM_PY, "-c", "import libvirt"], check=False,
                              capture_output=True).returncode == 0
    except OSError:
        return False


def _watch(python: str, *args: str, stdin_open_for: float = 0.0) -> tuple[int, list[dict]]:
    proc = subprocess.Popen([python, "-m", "host_executor", "--watch-domains", *args],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    time.sleep(stdin_open_for)
    proc.stdin.close()  # the controller goes away
    proc.stdin = None
    out, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err
    return proc.returncode, [json.loads(line) for line in out.splitlines()]


@pytest.mark.skipif(not _has_libvirt(), reason="Debian's python3-libvirt is not installed")
def test_snapshot_heartbeats_and_exit_when_the_controller_leaves() -> None:
    rc, events = _watch(SYSTEM_PY, "test:///default", "--heartbeat", "0.3", "--watch-stdin",
                        stdin_open_for=4.0)
    assert rc == 0
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["hello", "domain_list"]
    assert kinds.count("heartbeat") >= 1
    (test_domain,) = events[1]["domains"]
    assert test_domain["name"] == "test" and test_domain["state"] == "running"
    assert test_domain["vcpus"] >= 1 and test_domain["memory_mib"] > 0


def test_without_bindings_names_the_package() -> None:
    rc, events = _watch(sys.executable, "test:///default")
    if rc == 0:
        pytest.skip("this interpreter has the libvirt bindings")
    assert rc == 2
    assert events[-1]["code"] == "no_libvirt" and "python3-libvirt" in events[-1]["message"]


def test_bad_usage_is_exit_2() -> None:
    rc, events = _watch(sys.executable, "--frobnicate")
    assert rc == 2 and events[-1]["code"] == "usage"


@pytest.mark.skipif(not _has_libvirt(), reason="Debian's python3-libvirt is not installed")
def test_stdin_eof_alone_does_not_stop_it_stdout_closing_does() -> None:
    proc = subprocess.Popen([SYSTEM_PY, "-m", "host_executor", "--watch-domains",
                             "test:///default", "--heartbeat", "0.3"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert json.loads(first)["event"] == "hello"
    time.sleep(1.0)
    assert proc.poll() is None  # stdin at EOF from the start: still watching
    proc.stdout.close()
    assert proc.wait(timeout=10) == 0
