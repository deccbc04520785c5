"""A secret param echoed by a step rests nowhere in the clear: not under the host's HOME
(journal, locks, cache), not in the control side's HOME or job store, not in any output."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from pathlib import Path

from sshd_harness import LoopbackSSHD

SECRET = "hunter2 'q' \"dq\" $x \u00fc"
MASK = "********"

TEMPLATE = r"""{#
description: Echo a secret param every way a step could (the secrets fault test).
params:
  password: {required: true, secret: true, description: The secret.}
#}
lock: say-{{ password }}
steps:
  - name: say {{ password }}
    shell:
      cmd: >-
        echo {{ password | quote }}; printf %s {{ password | quote }} | base64;
        echo {{ password | quote }} >&2; printf '\377%s\n' {{ password | quote }}
  - name: fail with it
    command:
      argv: [/nonexistent/{{ password }}]
"""


def _forms(secret: str = SECRET) -> list[bytes]:
    raw = secret.encode()
    b64 = base64.b64encode(raw)
    return [raw, b64, b64.rstrip(b"="), json.dumps(secret)[1:-1].encode(),
            shlex.quote(secret).encode()]


def _leaks(root: Path) -> list[tuple[str, bytes]]:
    """Every (file, form) under ``root`` that shows the secret, file names included."""
    found = []
    for path in root.rglob("*"):
        blob = str(path).encode() + b"\n" + (path.read_bytes() if path.is_file() else b"")
        found += [(str(path), form) for form in _forms() if form in blob]
    return found


def _hostplane(server: LoopbackSSHD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([".venv/bin/hostplane", *args], capture_output=True, text=True,
                          env=server.env(), timeout=120)


def test_a_secret_param_rests_nowhere_in_the_clear(sshd: LoopbackSSHD, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "say_secret.yaml.j2").write_text(TEMPLATE)
    secrets = tmp_path / "vars.json"  # outside both HOMEs: it is the user's own file
    secrets.write_text(json.dumps({"password": SECRET}))

    out = _hostplane(sshd, "run", *sshd.cli_args(), "all", "say_secret", "--templates",
                     str(templates), "-e", f"@{secrets}", "--json")
    assert out.returncode == 2, out.stderr + out.stdout  # step 2 fails, on purpose
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    executor = [e for e in lines if e.get("kind") == "executor"]
    ends = [e["event"] for e in executor if e["event"]["event"] == "step_end"]
    assert len(ends) == 2 * len(sshd.hosts)
    assert all(MASK in e["stdout"] and MASK in e["stderr"] for e in ends if e["index"] == 0)
    assert all(MASK in e["msg"] for e in ends if e["index"] == 1)
    for form in _forms():
        assert form.decode() not in out.stdout + out.stderr

    assert _leaks(sshd.home) == []  # journals, lock files, the executor's cache
    control = Path(sshd.env()["HOME"])
    assert list(control.rglob("*")), "the control side recorded nothing"
    assert _leaks(control) == []  # the job store (SQLite) lives there too

    ids = {e["host"]: e["event"]["id"] for e in executor if e["event"]["event"] == "hello"}
    fetched = _hostplane(sshd, "results", "fetch", *sshd.cli_args(), "node01", ids["node01"])
    assert fetched.returncode == 0, fetched.stderr
    assert MASK in fetched.stdout
    for form in _forms():
        assert form.decode() not in fetched.stdout
