#!/usr/bin/env python3
"""Write a hostplane (and Ansible) INI inventory for the Vagrant lab.

    python3 inventory.py > hosts.ini             # runs `vagrant ssh-config` here
    python3 inventory.py --ssh-config FILE ...   # from a saved `vagrant ssh-config` output

Vagrant's own ssh-config turns host key checking off. This script does not: it records
each VM's real host key (read through `vagrant ssh`, i.e. through the hypervisor-managed
channel, not a network guess) into a known_hosts file beside the inventory, and the
inventory points ssh there with strict checking. Standard library only.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

FIELDS = {"hostname": "ansible_host", "port": "ansible_port", "user": "ansible_user",
          "identityfile": "ansible_ssh_private_key_file"}


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """``{host: {hostname, port, user, identityfile}}`` from ``vagrant ssh-config`` output."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key == "host":
            current = hosts.setdefault(value, {})
        elif current is not None and key in FIELDS and key not in current:
            current[key] = value
    return hosts


def render_inventory(hosts: dict[str, dict[str, str]], known_hosts: Path,
                     group: str = "vagrant") -> str:
    lines = ["# hostplane inventory for the Vagrant lab (vagrant/inventory.py)", f"[{group}]"]
    for name in sorted(hosts):
        fields = [name] + [f"{FIELDS[k]}={shlex.quote(v)}" for k, v in
                           sorted(hosts[name].items(), key=lambda kv: list(FIELDS).index(kv[0]))]
        lines.append(" ".join(fields))
    common = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    lines += ["", f"[{group}:vars]", "ansible_python_interpreter=/usr/bin/python3",
              f"ansible_ssh_common_args='{common}'", "", "[kvm:children]", group, ""]
    return "\n".join(lines)


def known_hosts_lines(hosts: dict[str, dict[str, str]], keys: dict[str, str]) -> list[str]:
    out = []
    for name in sorted(hosts):
        if name not in keys:
            continue
        address, port = hosts[name].get("hostname", name), hosts[name].get("port", "22")
        label = address if port == "22" else f"[{address}]:{port}"
        out.append(f"{label} {keys[name].strip()}")
    return out


def vagrant(*args: str) -> str:
    proc = subprocess.run(["vagrant", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"vagrant {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ssh-config", type=Path, help="saved `vagrant ssh-config` output")
    parser.add_argument("--known-hosts", type=Path, default=Path("known_hosts"),
                        help="where to write the VMs' host keys (default ./known_hosts)")
    parser.add_argument("--group", default="vagrant")
    args = parser.parse_args(argv)
    text = args.ssh_config.read_text() if args.ssh_config else vagrant("ssh-config")
    hosts = parse_ssh_config(text)
    if not hosts:
        sys.exit("no hosts in the ssh-config output (is the lab up?)")
    known = args.known_hosts.resolve()
    if not args.ssh_config:
        keys = {name: vagrant("ssh", name, "-c", "cat /etc/ssh/ssh_host_ed25519_key.pub")
                for name in hosts}
        known.write_text("\n".join(known_hosts_lines(hosts, keys)) + "\n")
    sys.stdout.write(render_inventory(hosts, known, args.group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
