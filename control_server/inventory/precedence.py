"""The merged variables of a host, by ansible-core's precedence (lowest first).

1. the ``all`` group's inventory vars, then every other group of the host, sorted by
   (depth, ansible_group_priority, name) so children beat parents;
2. ``group_vars/all`` beside each source (sources in ``-i`` order), then the
   playbook-dir ``group_vars/all`` when one is given;
3. ``group_vars/<group>`` beside each source, each source's groups in the order of 1,
   then the playbook-dir ones;
4. the host's inventory vars, then ``host_vars/<host>`` beside each source, then in the
   playbook dir.

Merging replaces top-level keys (ansible's default ``hash_behaviour=replace``).
"""

from __future__ import annotations

from typing import Any

from control_server.inventory.model import GroupNode, HostNode, InventoryGraph, sort_groups
from control_server.inventory.vars_files import VarsDirs

# ansible-inventory drops these from its output (C.INTERNAL_STATIC_VARS).
INTERNAL_VARS = frozenset(
    {
        "ansible_async_path", "ansible_collection_name", "ansible_config_file",
        "ansible_dependent_role_names", "ansible_diff_mode", "ansible_facts",
        "ansible_forks", "ansible_inventory_sources", "ansible_limit", "ansible_play_batch",
        "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_role_names",
        "ansible_playbook_python", "ansible_role_name", "ansible_role_names",
        "ansible_run_tags", "ansible_skip_tags", "ansible_verbosity", "ansible_version",
        "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
        "groups", "group_names", "hostvars", "playbook_dir", "play_hosts", "role_name",
        "role_names", "role_path", "role_uuid",
    }
)  # fmt: skip


def host_vars(
    host: HostNode, graph: InventoryGraph, inventory_dirs: VarsDirs, play_dirs: VarsDirs
) -> dict[Any, Any]:
    all_group = graph.groups["all"]
    groups = sort_groups(g for g in host.groups if g is not all_group)
    merged: dict[Any, Any] = dict(all_group.vars)
    for group in groups:
        merged.update(group.vars)
    for dirs in (inventory_dirs, play_dirs):
        for layer in dirs.group_vars("all"):
            merged.update(layer)
    for dirs in (inventory_dirs, play_dirs):
        _group_layers(merged, dirs, groups)
    merged.update(host.vars)
    for dirs in (inventory_dirs, play_dirs):
        for layer in dirs.host_vars(host.name):
            merged.update(layer)
    return {k: v for k, v in merged.items() if k not in INTERNAL_VARS}


def _group_layers(merged: dict[Any, Any], dirs: VarsDirs, groups: list[GroupNode]) -> None:
    # Source-major: every group of the first source's folder, then of the next source's.
    per_group = [dirs.group_vars(g.name) for g in groups]
    for index in range(len(dirs.folders)):
        for layers in per_group:
            merged.update(layers[index])
