"""Labs of real SSH hosts (Docker containers): three plain hosts for the fan-out tests, and
two libvirt hosts (libvirtd + QEMU) shared by the libvirt tests and the README walkthrough."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_server.lab import Lab, lab_down, lab_up

LAB = f"hostplane-it-{uuid.uuid4().hex[:6]}"  # hermetic: one lab per run
HOSTPLANE = [sys.executable, "-m", "control_server"]


def _can_have_docker() -> bool:
    return os.geteuid() == 0 or Path("/var/run/docker.sock").exists()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("ssh") is None or not _can_have_docker():
        pytest.skip("needs an ssh client and a Docker engine (or root to start one)")
    folder = tmp_path_factory.mktemp("itlab")
    lab = lab_up(3, name=LAB, folder=folder)
    yield lab
    lab_down(LAB, folder)


@pytest.fixture(scope="session")
def libvirt_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two hypervisor hosts, up once per run under a name of its own (hermetic)."""
    if shutil.which("ssh") is None or not _can_have_docker():
        pytest.skip("needs an ssh client and a Docker engine (or root to start one)")
    name = f"hostplane-lv-{uuid.uuid4().hex[:6]}"
    folder = tmp_path_factory.mktemp("lvlab")
    lab = lab_up(2, name=name, folder=folder, libvirt=True)
    yield lab
    lab_down(name, folder)


class Tools:
    """Out-of-band looks at hosts (the system ssh client, not hostplane) and CLI runs."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def ssh(self, host: str, command: str, timeout: float = 30) -> str:
        proc = subprocess.run(
            ["ssh", "-F", str(self.lab.ssh_config), "-o", "BatchMode=yes", host, command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        return proc.stdout

    def hostplane(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HOSTPLANE, *args], capture_output=True, text=True, timeout=timeout, check=False,
        )


@pytest.fixture(scope="session")
def tools(lab: Lab) -> Tools:
    return Tools(lab)
