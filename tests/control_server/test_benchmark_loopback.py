"""Smoke test of ``benchmarks/fanout.py --loopback``: 3 hosts, 1 round, the floor and
``hostplane exec`` only. It checks that the mode runs end to end and prints its result
table, not any timing (the benchmark is a script, not a timed test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "fanout.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from loopback import have_sshd  # noqa: E402


@pytest.mark.skipif(not have_sshd(), reason="needs /usr/sbin/sshd and ssh-keygen")
def test_loopback_mode_prints_a_result_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--loopback", "-n", "3", "--rounds", "1",
         "--tools", "floor-1,exec", "--no-startup", "--workdir", str(tmp_path / "work"),
         "--json", str(tmp_path / "result.json")],
        capture_output=True, text=True, timeout=60, env=dict(os.environ), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "| N | workload | tool | wall s | vs floor | vs pyinfra |" in out
    rows = [line for line in out.splitlines() if line.startswith("| 3 | 1 command |")]
    assert [row.split("|")[3].strip() for row in rows] == ["floor", "hostplane exec"]
    assert "FAILED" not in proc.stderr
    assert (tmp_path / "result.json").is_file()
    # the hosts' HOME was the benchmark's own: the executor is cached there
    assert list((tmp_path / "work" / "fleet" / "home" / ".cache" / "hostplane").iterdir())
    # every sshd stopped: nothing listens on the fleet's folder any more
    pids = subprocess.run(["pgrep", "-f", str(tmp_path / "work" / "fleet")],
                          capture_output=True, text=True, check=False).stdout.split()
    assert pids == []
