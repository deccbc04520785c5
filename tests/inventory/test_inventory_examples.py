"""The shipped example inventories: ansible-core reads them exactly as hostplane does."""

from __future__ import annotations

from pathlib import Path

import pytest
from inv_oracle import HAVE_ANSIBLE, Call, Oracle, graph_call, hosts_call, list_call

from control_server.inventory import Inventory, connection_target

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"
SOURCES = {
    "ini": [str(EXAMPLES / "example.ini")],
    "yml": [str(EXAMPLES / "example.yml")],
    "local": [str(EXAMPLES / "local.ini")],
    "folder": [str(EXAMPLES)],
    "ini+local": [str(EXAMPLES / "example.ini"), str(EXAMPLES / "local.ini")],
}
PATTERNS = ["all", "kvm", "rack1:&gpu", "kvm:!rack2", "gpu:rack1", "localhost", "kvm[-1]", "*07*"]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Oracle, Path]:
    if not HAVE_ANSIBLE:
        pytest.skip("ansible-core (the oracle) is missing")
    root = tmp_path_factory.mktemp("examples")
    cwd = root / "cwd"
    cwd.mkdir()
    result = Oracle(root / "ansible-home")
    result.run(call for sources in SOURCES.values() for call in _calls(sources, cwd))
    return result, cwd


def _calls(sources: list[str], cwd: Path) -> list[Call]:
    calls = [list_call(sources, cwd), graph_call(sources, cwd)]
    return calls + [hosts_call(sources, cwd, p) for p in PATTERNS]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_examples_read_like_ansible(oracle: tuple[Oracle, Path], name: str) -> None:
    ansible, cwd = oracle
    sources = SOURCES[name]
    inventory = Inventory.load(sources, cwd=cwd)
    assert inventory.to_ansible_list() == ansible.result(list_call(sources, cwd)).json()
    assert inventory.graph() == ansible.result(graph_call(sources, cwd)).stdout.rstrip("\n")
    for pattern in PATTERNS:
        expected = ansible.result(hosts_call(sources, cwd, pattern)).list_hosts()
        assert [h.name for h in inventory.hosts(pattern)] == expected, pattern
    assert not [w for w in inventory.warnings if not w.startswith("Could not match")]


def test_ini_and_yaml_examples_describe_the_same_fleet() -> None:
    ini = Inventory.load(SOURCES["ini"])
    yml = Inventory.load(SOURCES["yml"])
    assert ini.to_ansible_list() == yml.to_ansible_list()
    assert ini.graph() == yml.graph()


def test_example_connection_targets() -> None:
    inventory = Inventory.load(SOURCES["ini+local"])
    kvm01 = connection_target(inventory.host("kvm01.example.net"))
    assert (kvm01.address, kvm01.port, kvm01.user, kvm01.become) == (
        "kvm01.example.net",
        None,
        "hostplane",
        True,
    )
    kvm07 = connection_target(inventory.host("kvm07.example.net"))
    assert (kvm07.address, kvm07.port) == ("192.0.2.57", 2222)
    local = connection_target(inventory.host("localhost"))
    assert (local.connection, local.become, local.user) == ("local", False, None)


def test_example_variable_precedence() -> None:
    inventory = Inventory.load(SOURCES["ini"])
    gpu = inventory.host("kvm03.example.net").vars
    assert gpu["hugepages"] == 1024  # gpu's priority beats kvm at the same depth
    assert gpu["rack"] == "r1" and gpu["gpu_passthrough"] is True
    kvm01 = inventory.host("kvm01.example.net").vars
    assert kvm01["libvirt_storage_pool"] == "nvme"  # host_vars folder beats group_vars
    assert kvm01["bridge_ports"] == ["eno1", "eno2"]
    assert kvm01["hugepages"] == 0
