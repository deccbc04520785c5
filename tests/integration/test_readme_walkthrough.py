"""The README's "Virtual machines on libvirt/QEMU" walkthrough, run word for word.

The commands are read out of the README's code block, so the README and this test cannot
drift: the first two lines (``lab up`` and ``inv=``) are checked against the session's
2-host libvirt lab (a name of its own per run, see conftest.py), every other line runs as
written, through bash, with ``$inv`` that lab's inventory. Each must exit 0, and the guest
must have printed its ready marker on every host's serial console.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from control_server.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Virtual machines on libvirt/QEMU"
MARKER = "HOSTPLANE-GUEST-READY"
# Per command: a launch waits up to its boot_timeout (120 s) for the guest, on each host.
COMMAND_TIMEOUT = 420


def walkthrough() -> list[str]:
    """The command lines of the section's first ``sh`` block (comments stay: bash skips them)."""
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no sh code block in the README's {SECTION!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def test_readme_walkthrough_word_for_word(libvirt_lab: Lab, tmp_path: Path) -> None:
    lines = walkthrough()
    up, inv_line, *commands = lines
    # The lab the README brings up is the one this session runs (2 hosts, libvirt).
    assert _words(up) == ["hostplane", "lab", "up", "-n", str(len(libvirt_lab.hosts)),
                          "--libvirt"], up
    assert libvirt_lab.libvirt
    # ... and its inv= names where `lab up` writes the default lab's inventory.
    assert _words(inv_line) == ["inv=~/.local/state/hostplane/lab/hostplane-lab/hosts.ini"]
    assert any("launch_instance" in line for line in commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(tmp_path), inv=str(libvirt_lab.inventory),  # hermetic job store
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    for line in commands:
        proc = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
        assert proc.returncode == 0, f"{line}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        words = _words(line)
        if "launch_instance" in words or "wait_ready=true" in words:
            _assert_booted(libvirt_lab, _extra_var(words, "name"))


def _extra_var(words: list[str], key: str) -> str:
    values = [b.split("=", 1)[1] for a, b in itertools.pairwise(words)
              if a == "-e" and b.startswith(f"{key}=")]
    assert values, f"no -e {key}=... in {words}"
    return values[-1]


def _assert_booted(lab: Lab, name: str) -> None:
    """The guest's ready marker, alone on its line, in every host's serial log (as root)."""
    for host in lab.hosts:
        log = subprocess.run(
            ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", host.name,
             "sudo cat " + json.dumps(f"/var/log/libvirt/qemu/{name}.serial.log")],
            capture_output=True, text=True, timeout=60, check=False).stdout
        assert re.search(f"(?m)^{MARKER}\r?$", log), f"{host.name}: {log[-2000:]}"
