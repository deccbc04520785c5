"""``Inventory``: load Ansible inventories, select hosts, print what ansible-inventory prints."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from control_server.errors import PatternError
from control_server.inventory.ansible_json import graph_output, list_output
from control_server.inventory.model import (
    LOCALHOST_NAMES,
    FrozenVars,
    Host,
    HostNode,
    InventoryGraph,
)
from control_server.inventory.patterns import (
    Matcher,
    implicit_localhost,
    read_limit,
    split_host_pattern,
)
from control_server.inventory.precedence import host_vars
from control_server.inventory.sources import is_host_list, read_source, resolve_source
from control_server.inventory.vars_files import VarsDirs


class Inventory:
    """Hosts and groups read from one or more ``-i`` sources."""

    def __init__(
        self, graph: InventoryGraph, inventory_dirs: VarsDirs, play_dirs: VarsDirs, cwd: Path
    ) -> None:
        self._graph = graph
        self._inventory_dirs = inventory_dirs
        self._play_dirs = play_dirs
        self._cwd = cwd
        self.warnings: list[str] = graph.warnings
        self._hosts = {name: self._freeze(node) for name, node in graph.hosts.items()}

    @classmethod
    def load(
        cls,
        sources: Sequence[str],
        cwd: Path | None = None,
        *,
        playbook_dir: Path | None = None,
    ) -> Inventory:
        """Read ``sources`` (files, folders, ``'h1,h2:2201,'`` lists) relative to ``cwd``.

        ``playbook_dir`` adds the group_vars/host_vars beside a playbook, at the precedence
        ansible gives them (``ansible-inventory`` uses its current directory for this).
        """
        base = Path(cwd) if cwd is not None else Path.cwd()
        if isinstance(sources, str):
            raise TypeError("sources must be a sequence of strings, not one string")
        graph = InventoryGraph()
        folders: list[Path] = []
        for source in sources:
            if not source:
                continue
            read_source(graph, source, base)
            if not is_host_list(source, base):
                folders.append(_vars_folder(resolve_source(source, base)))
        graph.reconcile()
        play = [Path(os.path.realpath(base / playbook_dir))] if playbook_dir is not None else []
        return cls(graph, VarsDirs(folders), VarsDirs(play), base)

    def hosts(self, pattern: str, limit: str | None = None) -> list[Host]:
        """Hosts matching ``pattern`` narrowed by ``limit``, in ``ansible --list-hosts`` order."""
        return [self._host_of(node) for node in self._select(pattern, limit)]

    def host(self, name: str) -> Host:
        found = self._hosts.get(name)
        if found is not None:
            return found
        if name in LOCALHOST_NAMES:
            node = self._graph.localhost or implicit_localhost(name)
            return self._host_of(node)
        raise PatternError(f"no host named {name!r} in the inventory", name)

    def group_names(self) -> list[str]:
        return sorted(self._graph.groups)

    def to_ansible_list(self, limit: str | None = None) -> dict[str, Any]:
        """What ``ansible-inventory --list [-l LIMIT]`` prints, as a dict (no ``profile``)."""
        nodes = self._select("all", limit) if limit else self._graph.groups["all"].all_hosts()
        nodes = [n for n in nodes if not n.implicit]
        return list_output(self._graph.groups["all"], nodes, lambda n: self._host_of(n).vars)

    def graph(self, group: str = "all") -> str:
        """What ``ansible-inventory --graph [GROUP]`` prints, without the final newline."""
        node = self._graph.groups.get(group)
        if node is None:
            raise PatternError("Pattern must be valid group name when using --graph", group)
        return graph_output(node)

    def _select(self, pattern: str, limit: str | None) -> list[HostNode]:
        # ansible reads an empty pattern as 'all'; a typo'd "$GROUP" must not do that here.
        if not isinstance(pattern, str) or not split_host_pattern(pattern):
            raise PatternError("empty host pattern", str(pattern))
        matcher = Matcher(self._graph, self.warnings)
        limits = read_limit(limit, self._cwd) if limit else None
        return matcher.select(pattern, limits)

    def _host_of(self, node: HostNode) -> Host:
        if not node.implicit and node.name in self._hosts:
            return self._hosts[node.name]
        return self._freeze(node)

    def _freeze(self, node: HostNode) -> Host:
        merged = host_vars(node, self._graph, self._inventory_dirs, self._play_dirs)
        if node.implicit:
            groups: tuple[str, ...] = ()
        else:
            names = sorted(g.name for g in node.groups if g.name != "all")
            groups = ("all", *names)
        return Host(node.name, FrozenVars(merged), groups, implicit=node.implicit)


def _vars_folder(source: Path) -> Path:
    folder = source if source.is_dir() else source.parent
    return Path(os.path.realpath(folder))
