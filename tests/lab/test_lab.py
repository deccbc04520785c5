"""The Docker lab against a real Docker engine and real sshd: no mocks.

Every check goes through the system ``ssh`` client with BatchMode and strict host key
checking against the lab's own known_hosts, the way a user (or Ansible) would use it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from control_server.errors import LabError
from control_server.lab import (
    BASE_IMAGE,
    HOST_IMAGE,
    Lab,
    Progress,
    lab_down,
    lab_status,
    lab_up,
    refresh_known_hosts,
    replace_host_key,
    start_host,
    stop_host,
)

pytestmark = pytest.mark.lab

LAB = f"hostplane-labtest-{uuid.uuid4().hex[:6]}"  # hermetic: one lab per run


def _ssh(lab: Lab, host: str, *command: str, timeout: float = 60,
         connect_timeout: int = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", "-o",
         "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={connect_timeout}", host, *command],
        capture_output=True, text=True, timeout=timeout, check=False)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def _can_have_docker() -> bool:
    # Root can install and start the engine (lab_up does); others need one running.
    return os.geteuid() == 0 or Path("/var/run/docker.sock").exists()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("ssh") is None or not _can_have_docker():
        pytest.skip("needs an ssh client and a Docker engine (or root to start one)")
    folder = tmp_path_factory.mktemp("lab")
    lab = lab_up(3, name=LAB, folder=folder)
    yield lab
    lab_down(LAB, folder)


def test_lab_files(lab: Lab) -> None:
    assert [h.name for h in lab.hosts] == [f"{LAB}-1", f"{LAB}-2", f"{LAB}-3"]
    assert [h.address.rsplit(".", 1)[1] for h in lab.hosts] == ["11", "12", "13"]
    assert all(h.address.startswith("10.213.") for h in lab.hosts)
    assert stat.S_IMODE(lab.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.folder.stat().st_mode) == 0o700
    inventory = lab.inventory.read_text()
    assert "[lab]" in inventory
    assert "ansible_become" not in inventory  # only the libvirt lab's VM work is root's
    for h in lab.hosts:
        assert (f"{h.name} ansible_host={h.address} ansible_user=hostplane "
                f"ansible_ssh_private_key_file={lab.key}") in inventory
    keys = [line.split()[2] for line in lab.known_hosts.read_text().splitlines()]
    assert len(keys) == 3 and len(set(keys)) == 3, "each container has its own host key"


def test_every_host_answers_over_ssh(lab: Lab) -> None:
    for h in lab.hosts:
        proc = _ssh(lab, h.name, "python3", "-c", "'print(1)'")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "1\n", ""), h.name
        assert _ssh(lab, h.name, "hostname").stdout.strip() == h.name


def test_sudo_is_passwordless_and_shells_are_silent(lab: Lab) -> None:
    host = lab.hosts[0].name
    assert _ssh(lab, host, "sudo", "-n", "id", "-u").stdout == "0\n"
    proc = _ssh(lab, host, "bash -lc true; bash -ic true 2>/dev/null; true")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_fan_out_past_default_maxstartups(lab: Lab) -> None:
    # Debian's default MaxStartups 10:30:100 drops handshakes past 10; the lab allows 200.
    host = lab.hosts[0].name
    config = _ssh(lab, host, "sudo", "-n", "/usr/sbin/sshd", "-T").stdout
    assert "maxstartups 200:30:400" in config and "maxsessions 100" in config
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda _: _ssh(lab, host, "echo", "ok", timeout=240), range(25)))
    assert [r.stdout for r in results] == ["ok\n"] * 25


def test_status_and_up_again_reuse_the_lab(lab: Lab) -> None:
    status = lab_status(LAB, lab.folder)
    assert status is not None and status.hosts == lab.hosts
    started = time.monotonic()
    lines: list[str] = []
    again = lab_up(3, name=LAB, folder=lab.folder, progress=Progress(lines.append))
    assert again.hosts == lab.hosts
    assert time.monotonic() - started < 30  # ~0.3s on an idle machine
    # One line per phase, each with the seconds since the start.
    phases = [f"base image {BASE_IMAGE}: present", f"host image {HOST_IMAGE}: up to date",
              "containers starting: 3 on ", "sshd ready on 3 hosts"]
    assert len(lines) == len(phases), lines
    for line, phase in zip(lines, phases, strict=True):
        assert line.split("] ", 1)[1].startswith(phase), lines
    assert all(re.match(r"lab up \[ *\d+\.\ds\] ", line) for line in lines), lines
    assert lab.known_hosts.read_text().count("ssh-ed25519") == 3


def test_stop_and_start_host(lab: Lab) -> None:
    host = lab.hosts[1]
    stop_host(lab, host)
    try:
        down = _ssh(lab, host.name, "true", timeout=20, connect_timeout=3)
        assert down.returncode == 255
        assert _ssh(lab, lab.hosts[0].name, "true").returncode == 0, "others stay up"
    finally:
        start_host(lab, host.name)
    # Same address, same host key: strict checking still passes.
    assert _ssh(lab, host.name, "echo", "back").stdout == "back\n"


def test_replace_host_key_breaks_strict_checking(lab: Lab) -> None:
    host = lab.hosts[2]
    old = lab.known_hosts.read_text()
    new_key = replace_host_key(lab, host)
    assert new_key.startswith("ssh-ed25519 ") and new_key not in old
    proc = _ssh(lab, host.name, "true")
    assert proc.returncode == 255
    assert "host key" in proc.stderr.lower() or "identification has changed" in proc.stderr.lower()
    refresh_known_hosts(lab)
    assert new_key in lab.known_hosts.read_text()
    assert _ssh(lab, host.name, "true").returncode == 0


def test_bad_arguments_are_lab_errors(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="1 to 200 hosts"):
        lab_up(0, name="x", folder=tmp_path)
    with pytest.raises(LabError, match="bad lab name"):
        lab_up(1, name="no/slash", folder=tmp_path)


def test_lab_down_removes_containers_network_and_files(lab: Lab, tmp_path: Path) -> None:
    name = f"{LAB}-down"
    small = lab_up(1, name=name, folder=tmp_path / "down")
    assert _ssh(small, small.hosts[0].name, "true").returncode == 0
    lab_down(name, small.folder)
    # Look behind lab_down's back with the docker CLI.
    assert _docker("ps", "-aq", "--filter", f"label=org.hostplane.lab={name}") == ""
    assert _docker("network", "ls", "-q", "--filter", f"name=^{name}$") == ""
    assert not small.folder.exists()
    assert lab_status(name, small.folder) is None
    lab_down(name, small.folder)  # idempotent
