"""A changed host key is never accepted: real sshd, real known_hosts, the real CLI.

Each key-swap case checks the exit status (4, unreachable), the "host key mismatch" naming
file:line of the recorded key, that the command did NOT run (a marker under the server's
HOME), and that known_hosts is unchanged byte for byte.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from sshd_harness import LoopbackSSHD, keygen

POLICIES = ["strict", "accept-new"]
NOT_VERIFIED = "host keys are NOT verified"


def _hostplane(server: LoopbackSSHD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([".venv/bin/hostplane", *args], capture_output=True, text=True,
                          env={**server.env(), "COLUMNS": "400"}, timeout=120)


def _touch(server: LoopbackSSHD, *flags: str, marker: str = "ran") -> subprocess.CompletedProcess[str]:
    return _hostplane(server, "exec", *server.cli_args(), "all", "--no-record", *flags,
                      "--", "touch", str(server.home / marker))


def _assert_refused(out: subprocess.CompletedProcess[str], server: LoopbackSSHD,
                    before: bytes, lines: list[int], label: str = "") -> None:
    text = " ".join((out.stdout + out.stderr).split())  # the console wraps long lines
    assert out.returncode == 4, text
    assert f"{label}host key mismatch" in text, text
    for line in lines:
        assert f"{server.known_hosts}:{line}" in text, text
    assert "accept-new" not in text  # never steered to the setting that would accept it
    assert not (server.home / "ran").exists(), "the command ran on a host with a changed key"
    assert server.known_hosts.read_bytes() == before


@pytest.mark.parametrize("policy", POLICIES)
def test_swapped_key_through_an_ssh_config_alias(sshd: LoopbackSSHD, policy: str) -> None:
    before = sshd.known_hosts.read_bytes()
    sshd.swap_host_key()
    out = _touch(sshd, "--host-key-checking", policy)
    _assert_refused(out, sshd, before, [1, 2])


@pytest.mark.parametrize("policy", POLICIES)
def test_swapped_key_through_ansible_host(sshd: LoopbackSSHD, policy: str) -> None:
    sshd.write_client_files(aliases=False)
    before = sshd.known_hosts.read_bytes()
    sshd.swap_host_key()
    _assert_refused(_touch(sshd, "--host-key-checking", policy), sshd, before, [1, 2])


@pytest.mark.parametrize("policy", POLICIES)
def test_swapped_key_with_paramiko(sshd: LoopbackSSHD, policy: str) -> None:
    before = sshd.known_hosts.read_bytes()
    sshd.swap_host_key()
    _assert_refused(_touch(sshd, "-c", "paramiko", "--host-key-checking", policy),
                    sshd, before, [1, 2])


def _behind_bastion(sshd_factory) -> tuple[LoopbackSSHD, LoopbackSSHD]:  # type: ignore[no-untyped-def]
    """Targets reached only through ``ProxyJump jump01`` (a second sshd); one known_hosts
    holds both servers' keys (targets on lines 1-2, the bastion on line 3)."""
    bastion = sshd_factory(count=1, name="bastion")
    target = sshd_factory(count=2, name="target")
    config = target.ssh_config.read_text()
    for name in target.hosts:
        config = config.replace(f"Host {name}\n", f"Host {name}\n  ProxyJump jump01\n")
    config += "\n" + bastion.ssh_config.read_text().replace("Host node01\n", "Host jump01\n")
    target.ssh_config.write_text(config)
    target.known_hosts.write_text(target.known_hosts.read_text()
                                  + bastion.known_hosts.read_text())
    return bastion, target


def test_proxyjump_verifies_each_hop(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    bastion, target = _behind_bastion(sshd_factory)
    out = _touch(target, marker="via-jump")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Accepted publickey" in bastion.log.read_text()  # really went through it


@pytest.mark.parametrize("policy", POLICIES)
def test_proxyjump_swapped_jump_host(sshd_factory, policy: str) -> None:  # type: ignore[no-untyped-def]
    bastion, target = _behind_bastion(sshd_factory)
    before = target.known_hosts.read_bytes()
    bastion.swap_host_key()
    out = _touch(target, "--host-key-checking", policy)
    _assert_refused(out, target, before, [3], label="jump host jump01: ")


@pytest.mark.parametrize("policy", POLICIES)
def test_proxyjump_swapped_target(sshd_factory, policy: str) -> None:  # type: ignore[no-untyped-def]
    _, target = _behind_bastion(sshd_factory)
    before = target.known_hosts.read_bytes()
    target.swap_host_key()
    out = _touch(target, "--host-key-checking", policy)
    _assert_refused(out, target, before, [1, 2])
    assert "jump host" not in out.stdout + out.stderr


def test_accept_new_adds_an_unknown_host_once(sshd: LoopbackSSHD) -> None:
    sshd.known_hosts.write_text("")
    strict = _touch(sshd)
    assert strict.returncode == 4 and "host key unknown" in strict.stdout + strict.stderr
    first = _touch(sshd, "--host-key-checking", "accept-new")
    assert first.returncode == 0, first.stdout + first.stderr
    lines = sshd.known_hosts.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(
        f"[{a}]:{sshd.port}" for a in sshd.addresses().values())
    assert all(line.split()[1:] == sshd.host_pub.split()[:2] for line in lines)
    again = _touch(sshd, "--host-key-checking", "accept-new")
    assert again.returncode == 0 and sshd.known_hosts.read_text().splitlines() == lines
    assert _touch(sshd).returncode == 0  # and strict now knows them


@pytest.mark.parametrize("transport", ["ssh", "paramiko"])
def test_accept_new_records_a_shared_sshd_once(sshd: LoopbackSSHD, transport: str) -> None:
    """Several inventory hosts on one address:port learn its key at once: one line."""
    sshd.write_client_files(aliases=False)
    addr = sshd.address(0)
    with sshd.inventory.open("a") as fh:
        fh.writelines(f"twin{i} ansible_host={addr} ansible_port={sshd.port} ansible_user=root "
                      f"ansible_ssh_private_key_file={sshd.client_key}\n" for i in range(4))
    sshd.known_hosts.write_text("")
    out = _touch(sshd, "-c", transport, "--host-key-checking", "accept-new")
    assert out.returncode == 0, out.stdout + out.stderr
    names = [line.split()[0] for line in sshd.known_hosts.read_text().splitlines()]
    assert sorted(names) == sorted(f"[{a}]:{sshd.port}" for a in sshd.addresses().values())


def _inventory_off(server: LoopbackSSHD) -> None:
    with server.inventory.open("a") as fh:
        fh.write("\n[nodes:vars]\nansible_ssh_common_args='-o StrictHostKeyChecking=no'\n")


def test_command_line_strict_wins_over_inventory_off(sshd: LoopbackSSHD) -> None:
    _inventory_off(sshd)
    before = sshd.known_hosts.read_bytes()
    sshd.swap_host_key()
    out = _touch(sshd, "--host-key-checking", "strict")
    _assert_refused(out, sshd, before, [1, 2])
    assert NOT_VERIFIED not in out.stderr


def test_inventory_off_warns(sshd: LoopbackSSHD) -> None:
    _inventory_off(sshd)
    sshd.swap_host_key()
    out = _touch(sshd)
    assert out.returncode == 0, out.stdout + out.stderr
    warning = " ".join(out.stderr.split())
    assert "[WARNING]: StrictHostKeyChecking=no in the inventory's ssh args" in warning
    assert NOT_VERIFIED in warning and "node01, node02" in warning


def test_ssh_config_off_warns_like_the_flag(sshd: LoopbackSSHD) -> None:
    sshd.ssh_config.write_text(sshd.ssh_config.read_text() + "\nHost *\n  StrictHostKeyChecking no\n")
    out = _touch(sshd)
    assert out.returncode == 0 and "StrictHostKeyChecking no in ssh_config" in out.stderr
    assert NOT_VERIFIED in " ".join(out.stderr.split())
    flag = _touch(sshd, "--host-key-checking", "off", marker="ran2")
    assert f"--host-key-checking off: {NOT_VERIFIED}" in " ".join(flag.stderr.split())


def test_host_key_alias_is_the_name_looked_up(sshd: LoopbackSSHD) -> None:
    config = sshd.ssh_config.read_text()
    for name in sshd.hosts:
        config = config.replace(f"Host {name}\n", f"Host {name}\n  HostKeyAlias {name}-key\n")
    sshd.ssh_config.write_text(config)
    sshd.known_hosts.write_text("".join(f"{n}-key {sshd.host_pub}\n" for n in sshd.hosts))
    assert _touch(sshd, marker="aliased").returncode == 0
    before = sshd.known_hosts.read_bytes()
    sshd.swap_host_key()
    out = _touch(sshd, "--host-key-checking", "accept-new")
    _assert_refused(out, sshd, before, [1, 2])
    assert re.search(r"recorded at \S+:1", " ".join(out.stdout.split()))


def test_paramiko_refuses_proxyjump_rather_than_going_direct(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    _, target = _behind_bastion(sshd_factory)
    out = _touch(target, "-c", "paramiko")
    assert out.returncode == 4 and "ProxyJump jump01 is not supported" in out.stdout + out.stderr
    assert not (target.home / "ran").exists()


def _certify(server: LoopbackSSHD) -> str:
    """Sign the server's host key with a new CA; returns the CA's public key."""
    ca_pub = keygen(server.root / "ca")
    subprocess.run(["ssh-keygen", "-q", "-s", str(server.root / "ca"), "-h", "-I", "nodes",
                    "-n", ",".join(server.addresses().values()),
                    str(server.host_key.with_suffix(".pub"))], check=True)
    server.restart(extra_config=[f"HostCertificate {server.root / 'host_key-cert.pub'}"])
    return ca_pub


def test_cert_authority_vouches_only_for_its_own_certificates(sshd: LoopbackSSHD) -> None:
    ca_pub = _certify(sshd)
    sshd.known_hosts.write_text(f"@cert-authority * {ca_pub}\n")
    assert _touch(sshd, marker="cert").returncode == 0
    other_ca = keygen(sshd.root / "other_ca")
    sshd.known_hosts.write_text(f"@cert-authority * {other_ca}\n")
    before = sshd.known_hosts.read_bytes()
    _assert_refused(_touch(sshd, "--host-key-checking", "accept-new"), sshd, before, [1])


@pytest.mark.parametrize("policy", POLICIES)
def test_revoked_key_is_refused(sshd: LoopbackSSHD, policy: str) -> None:
    known = sshd.known_hosts.read_text() if policy == "strict" else ""
    sshd.known_hosts.write_text(known + f"@revoked * {sshd.host_pub}\n")
    before = sshd.known_hosts.read_bytes()
    out = _touch(sshd, "--host-key-checking", policy)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 4 and "host key revoked" in text, text
    assert f"{sshd.known_hosts}:{known.count(chr(10)) + 1}" in text
    assert not (sshd.home / "ran").exists() and sshd.known_hosts.read_bytes() == before
