"""The Vagrant lab: its inventory script on a recorded `vagrant ssh-config`, and
`vagrant validate` on the Vagrantfile (boxes cannot be downloaded here)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from control_server.inventory import Inventory, connection_target
from control_server.transport.ssh_options import host_ssh_options

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vagrant_inventory", ROOT / "vagrant/inventory.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inventory_from_recorded_ssh_config(tmp_path: Path) -> None:
    script = _script()
    hosts = script.parse_ssh_config((HERE / "ssh-config.recorded").read_text())
    assert sorted(hosts) == ["hv01", "hv02"]
    known = tmp_path / "known_hosts"
    inv = tmp_path / "hosts.ini"
    inv.write_text(script.render_inventory(hosts, known))
    inventory = Inventory.load([str(inv)])
    assert [h.name for h in inventory.hosts("kvm")] == ["hv01", "hv02"]
    hv02 = connection_target(inventory.host("hv02"))
    assert (hv02.address, hv02.port, hv02.user) == ("192.168.121.213", 2222, "vagrant")
    assert hv02.key_file == "/home/ops/my lab/.vagrant/machines/hv02/libvirt/private_key"
    assert hv02.python == "/usr/bin/python3"
    opts = host_ssh_options(inventory.host("hv01").vars)
    # Vagrant's "StrictHostKeyChecking no" is NOT carried over.
    assert opts.known_hosts == known and opts.host_key_checking == "strict"


def test_known_hosts_lines_use_the_port_form() -> None:
    script = _script()
    hosts = script.parse_ssh_config((HERE / "ssh-config.recorded").read_text())
    lines = script.known_hosts_lines(hosts, {"hv01": "ssh-ed25519 AAAA1\n",
                                             "hv02": "ssh-ed25519 AAAA2"})
    assert lines == ["192.168.121.57 ssh-ed25519 AAAA1", "[192.168.121.213]:2222 ssh-ed25519 AAAA2"]


def test_cli_on_a_recorded_config(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["python3", str(ROOT / "vagrant/inventory.py"), "--ssh-config",
         str(HERE / "ssh-config.recorded"), "--known-hosts", str(tmp_path / "kh")],
        capture_output=True, text=True, check=True)
    assert "[vagrant]" in proc.stdout and "hv01 ansible_host=192.168.121.57" in proc.stdout


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="Debian's vagrant package is not installed")
def test_vagrantfile_validates(tmp_path: Path) -> None:
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "home"), "HOSTPLANE_VAGRANT_HOSTS": "3",
           "VAGRANT_CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant", env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully" in proc.stdout
