"""Ansible-compatible inventories: INI/YAML sources, group_vars/host_vars, host patterns.

    inv = Inventory.load(["inventory/example.ini"])
    for host in inv.hosts("kvm:&rack1", limit="kvm01*"):
        target = connection_target(host)

Reads inventories the way ansible-core 2.19 does, and reproduces ``ansible-inventory
--list``/``--graph`` and ``ansible PATTERN --list-hosts`` (tested against ansible-core).

Where hostplane departs from ansible, on purpose:
- a source ansible would skip with a warning (missing, unparsable) is an InventoryError;
- no inventory scripts, inventory plugin configs (``plugin:``), TOML, or vault decryption
  (``!vault`` values stay ``VaultText``; a vault-encrypted vars file is an error);
- an empty pattern, a bad ``~regex`` or an out-of-range subscript is a PatternError
  (``ansible`` reads the first as 'all' and turns the others into "no hosts");
- a malformed pattern selects nothing: an unbalanced ``[``/``]`` (ansible drops it, so
  ``~[x`` reads as ``~``, every host), a subscript that is not ``[i]``/``[i:j]``/``[i:]``
  (``[1:2:3]``, ``[:2]``: ansible globs them) or one ending before its start is a
  PatternError naming the pattern and the fault;
- group_vars/host_vars beside the playbook (ansible: the current directory) are read only
  when ``playbook_dir`` is given;
- where ansible's host order depends on object hashes (groups nested two levels deep under
  several parents), the order here is the stable breadth-first one.
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
