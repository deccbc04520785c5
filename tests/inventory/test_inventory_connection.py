"""connection_target(): how each host is reached."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from control_server.errors import InventoryError
from control_server.inventory import ConnectionTarget, Host, Inventory, connection_target


def host(**variables: Any) -> Host:
    return Host("kvm01", variables, ("all",))


def test_bare_host_defers_to_ssh_config() -> None:
    assert connection_target(host()) == ConnectionTarget(
        host="kvm01",
        address="kvm01",
        port=None,
        user=None,
        key_file=None,
        connection="ssh",
        python="python3",
        become=False,
        become_user=None,
    )


def test_all_connection_variables() -> None:
    target = connection_target(
        host(
            ansible_host="192.0.2.10",
            ansible_port="2201",
            ansible_user="admin",
            ansible_ssh_private_key_file="~/.ssh/kvm",
            ansible_python_interpreter="/usr/bin/python3.11",
            ansible_become="yes",
            ansible_become_user="libvirt",
        )
    )
    assert target.address == "192.0.2.10"
    assert target.port == 2201
    assert target.user == "admin"
    assert target.key_file == os.path.expanduser("~/.ssh/kvm")
    assert target.python == "/usr/bin/python3.11"
    assert target.become is True
    assert target.become_user == "libvirt"


def test_ssh_aliases_win_like_in_ansible() -> None:
    target = connection_target(
        host(ansible_host="a", ansible_ssh_host="b", ansible_user="u1", ansible_ssh_user="u2")
    )
    assert (target.address, target.user) == ("b", "u2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ssh", "ssh"),
        ("smart", "ssh"),
        ("local", "local"),
        ("paramiko", "paramiko"),
        ("paramiko_ssh", "paramiko"),
        ("ansible.builtin.ssh", "ssh"),
    ],
)
def test_connection_kinds(value: str, expected: str) -> None:
    assert connection_target(host(ansible_connection=value)).connection == expected


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ansible_connection": "winrm"}, "is not supported"),
        ({"ansible_port": "ssh"}, "must be a port number"),
        ({"ansible_port": 70000}, "between 1 and 65535"),
        ({"ansible_port": float("inf")}, "must be a port number"),
        ({"ansible_become": "maybe"}, "must be a boolean"),
    ],
)
def test_bad_values_raise_inventory_error(variables: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        connection_target(host(**variables))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("True", True),
        ("on", True),
        (1, True),
        ("no", False),
        (0, False),
        (None, False),
    ],
)
def test_become_booleans(value: Any, expected: bool) -> None:
    assert connection_target(host(ansible_become=value)).become is expected


def test_render_hook_sees_templated_values() -> None:
    seen = []

    def render(name: str, value: Any) -> Any:
        seen.append(name)
        return str(value).replace("{{ inventory_hostname }}", "kvm01")

    target = connection_target(host(ansible_host="{{ inventory_hostname }}.lab"), render=render)
    assert target.address == "kvm01.lab"
    assert seen == ["ansible_host"]


def test_from_inventory(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(
        "localhost ansible_connection=local\n[kvm]\nkvm01:2222 ansible_user=root\nkvm02\n"
    )
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "kvm.yml").write_text("ansible_become: true\n")
    inv = Inventory.load(["hosts.ini"], cwd=tmp_path)
    local, kvm01, kvm02 = (connection_target(h) for h in inv.hosts("all"))
    assert (local.connection, local.address) == ("local", "localhost")
    assert (kvm01.port, kvm01.user, kvm01.become) == (2222, "root", True)
    assert (kvm02.port, kvm02.user, kvm02.address) == (None, None, "kvm02")


def test_implicit_localhost_is_local_with_this_python() -> None:
    inv = Inventory.load(["web1,"])
    (local,) = inv.hosts("localhost")
    target = connection_target(local)
    assert target.connection == "local"
    assert target.python == sys.executable
