"""Ansible's ssh args in inventory vars map to hostplane's SSH options."""

from __future__ import annotations

from pathlib import Path

from control_server.transport.ssh_options import host_ssh_options


def test_known_hosts_config_and_strictness_from_common_args() -> None:
    opts = host_ssh_options(
        {
            "ansible_ssh_common_args": "-F /lab/ssh_config -o UserKnownHostsFile=/lab/known_hosts",
            "ansible_ssh_extra_args": "-o StrictHostKeyChecking=accept-new",
        }
    )
    assert opts.ssh_config == Path("/lab/ssh_config")
    assert opts.known_hosts == Path("/lab/known_hosts")
    assert opts.host_key_checking == "accept-new"


def test_no_args_means_defaults() -> None:
    opts = host_ssh_options({})
    assert (opts.ssh_config, opts.known_hosts, opts.host_key_checking) == (None, None, None)


def test_unbalanced_quotes_do_not_crash() -> None:
    opts = host_ssh_options({"ansible_ssh_common_args": "-o 'StrictHostKeyChecking=no"})
    assert opts.known_hosts is None


def test_strict_no_means_off() -> None:
    opts = host_ssh_options({"ansible_ssh_common_args": "-oStrictHostKeyChecking=no"})
    assert opts.host_key_checking == "off"
