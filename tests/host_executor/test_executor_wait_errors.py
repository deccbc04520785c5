"""A ``wait`` on a path that cannot be read fails at once, naming the path and the error;
only a missing path is waited for (it was once a full timeout and "timed out")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from executor_harness import Executor, parse_events, request, step


def test_wait_pattern_in_a_directory_fails_at_once(executor: Executor, tmp_path: Path) -> None:
    started = time.monotonic()
    out = executor.run(request([step("w", "wait", path=str(tmp_path), pattern="x", timeout=30)]))
    end = out.one("step_end")
    assert end["status"] == "failed"
    assert end["msg"] == f"cannot read {tmp_path}: Is a directory"
    assert time.monotonic() - started < 10


def _as_nobody(executor: Executor, doc: dict[str, object], home: Path) -> list[dict[str, object]]:
    env = dict(executor.env(), HOSTPLANE_CACHE_DIR=str(home / "cache"), HOME=str(home))
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *executor.argv()]
    proc = subprocess.run(argv, input=json.dumps(doc).encode(), capture_output=True, env=env,
                          timeout=60, cwd=str(Path(__file__).resolve().parents[2]))
    assert b"Traceback" not in proc.stderr, proc.stderr
    return parse_events(proc.stdout)


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0,
                    reason="needs a non-root user (setpriv) to be refused a read")
@pytest.mark.parametrize("pattern", [None, "login:"])
def test_wait_on_an_unreadable_path_fails_at_once(
    executor: Executor, tmp_path: Path, pattern: str | None
) -> None:
    secret = tmp_path / "private" / "serial.log"
    secret.parent.mkdir()
    secret.write_text("login: ready\n")
    secret.chmod(0o000)
    secret.parent.chmod(0o700 if pattern is None else 0o755)  # no search / no read
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    tmp_path.chmod(0o755)
    args = {"path": str(secret), "timeout": 30} | ({"pattern": pattern} if pattern else {})
    doc = request([step("w", "wait", **args)])
    started = time.monotonic()
    if os.geteuid() == 0:
        events = _as_nobody(executor, doc, home)
    else:
        events = parse_events(executor.run(doc).stdout)
    (end,) = [e for e in events if e["event"] == "step_end"]
    assert end["status"] == "failed", end
    assert end["msg"] == f"cannot read {secret}: Permission denied"
    assert time.monotonic() - started < 10
