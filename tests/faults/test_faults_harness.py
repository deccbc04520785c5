"""The fault suite's sshd answers on every address, with the key its known_hosts records."""

from __future__ import annotations

import json
import subprocess

from sshd_harness import LoopbackSSHD


def _hostplane(server: LoopbackSSHD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([".venv/bin/hostplane", *args], capture_output=True, text=True,
                          env=server.env(), timeout=120)


def test_exec_reaches_every_host_with_verified_keys(sshd: LoopbackSSHD) -> None:
    out = _hostplane(sshd, "exec", *sshd.cli_args(), "all", "--json", "--no-record", "--",
                     "sh", "-c", "echo $HOME")
    assert out.returncode == 0, out.stderr + out.stdout
    ends = [json.loads(line) for line in out.stdout.splitlines()]
    homes = {e["host"]: e["event"]["stdout"].strip() for e in ends
             if e.get("kind") == "executor" and e["event"]["event"] == "step_end"}
    assert homes == {h: str(sshd.home) for h in sshd.hosts}
