"""Ansible-compatible inventories: INI/YAML sources, group_vars/host_vars, host patterns.

    inv = Inventory.load(["inventory/example.ini"])
    for host in inv.hosts("kvm:&rack1", limit="kvm01*"):
        target = connection_target(host)

Reads inventories the way ansible-core 2.19 does, and reproduces ``ansible-inventory
--list``/``--graph`` and ``ansible PATTERN --list-hosts`` (tested against ansible-core).
"""

from control_server.errors import InventoryError, PatternError
from control_server.inventory.connection import ConnectionTarget, connection_target
from control_server.inventory.inventory import Inventory
from control_server.inventory.model import FrozenVars, Host
from control_server.inventory.values import UnsafeText, VaultText

__all__ = [
    "ConnectionTarget",
    "FrozenVars",
    "Host",
    "Inventory",
    "InventoryError",
    "PatternError",
    "UnsafeText",
    "VaultText",
    "connection_target",
]
