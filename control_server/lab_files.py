"""What a lab is on the client side: its hosts, and the files ``lab up`` writes for them.

A key pair, a known_hosts of the hosts' real keys, an Ansible INI inventory and an
``ssh -F`` config, all in the lab's folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from control_server.errors import LabError

USER = "hostplane"
FILES = ("hosts.ini", "known_hosts", "ssh_config", "id_ed25519", "id_ed25519.pub")


@dataclass
class LabHost:
    name: str
    address: str
    container_id: str


@dataclass
class Lab:
    name: str
    folder: Path
    hosts: list[LabHost]
    inventory: Path
    known_hosts: Path
    key: Path
    ssh_config: Path
    libvirt: bool = False

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"lab {self.name}: no host {name!r}")


def default_folder(name: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hostplane" / "lab" / name


def lab_paths(name: str, folder: Path, hosts: list[LabHost], libvirt: bool) -> Lab:
    return Lab(name=name, folder=folder, hosts=hosts, inventory=folder / "hosts.ini",
               known_hosts=folder / "known_hosts", key=folder / "id_ed25519",
               ssh_config=folder / "ssh_config", libvirt=libvirt)


def ensure_key(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    key = folder / "id_ed25519"
    if not key.exists() or not key.with_suffix(".pub").exists():
        if shutil.which("ssh-keygen") is None:
            raise LabError("ssh-keygen not found: install openssh-client")
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostplane-lab",
                        "-f", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    return key


def _inventory(lab: Lab) -> str:
    common = f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes"
    lines = [f"# hostplane lab {lab.name}: rewritten by every lab up", "[lab]"]
    lines += [f"{h.name} ansible_host={h.address} ansible_user={USER} "
              f"ansible_ssh_private_key_file={lab.key}" for h in lab.hosts]
    lines += ["", "[lab:vars]", f"ansible_ssh_common_args='{common}'"]
    if lab.libvirt:
        # Hypervisor work is root's (images, serial logs under /var/log/libvirt), as on
        # a real fleet: the lab's inventory says so, like an Ansible one would, so the
        # README's VM commands work as written (-b on the command line does the same).
        lines += ["# the VM templates run as root (sudo): images and serial logs are root's",
                  "ansible_become=true"]
    return "\n".join([*lines, ""])


def write_files(lab: Lab, host_keys: list[str]) -> None:
    """known_hosts (real keys), an Ansible INI inventory and an ``ssh -F`` config."""
    lab.known_hosts.write_text("".join(
        f"{h.name},{h.address} {k}\n" for h, k in zip(lab.hosts, host_keys, strict=True)))
    lab.inventory.write_text(_inventory(lab))
    lab.ssh_config.write_text(f"# hostplane lab {lab.name}: ssh -F {lab.ssh_config} HOST\n" + "".join(
        f"\nHost {h.name}\n    HostName {h.address}\n    User {USER}\n"
        f'    IdentityFile "{lab.key}"\n    IdentitiesOnly yes\n'
        f'    UserKnownHostsFile "{lab.known_hosts}"\n    GlobalKnownHostsFile /dev/null\n'
        "    StrictHostKeyChecking yes\n    LogLevel ERROR\n" for h in lab.hosts))


def remove_files(folder: Path) -> None:
    for file in FILES:
        (folder / file).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
