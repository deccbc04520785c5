"""``ansible-inventory --list`` and ``--graph`` output, built from the inventory graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from control_server.inventory.model import GroupNode, HostNode
from control_server.inventory.values import to_json_value


def list_output(
    top: GroupNode,
    hosts: list[HostNode],
    vars_of: Callable[[HostNode], Mapping[Any, Any]],
) -> dict[str, Any]:
    """The ``--list`` document (minus ``_meta.profile``) for ``hosts`` under ``top``."""
    available = frozenset(h.name for h in hosts)
    seen: set[str] = set()
    result: dict[str, Any] = {}
    _format_group(top, available, seen, result)
    hostvars: dict[str, Any] = {}
    for host in hosts:
        values = vars_of(host)
        if values:
            hostvars[host.name] = to_json_value(values)
    result["_meta"] = {"hostvars": hostvars}
    return result


def _format_group(
    group: GroupNode, available: frozenset[str], seen: set[str], result: dict[str, Any]
) -> None:
    entry: dict[str, Any] = {}
    # Insert first so the parent's key comes before its children's, as ansible does.
    result[group.name] = entry
    if group.name != "all":
        names = [h.name for h in group.hosts if h.name in available]
        if names:
            entry["hosts"] = names
    children = []
    for child in group.children:
        children.append(child.name)
        if child.name not in seen:
            _format_group(child, available, seen, result)
            seen.add(child.name)
    if children:
        entry["children"] = children
    if not entry:
        del result[group.name]


def graph_output(group: GroupNode) -> str:
    """The ``--graph`` text for ``group``, without the trailing newline."""
    return "\n".join(_graph_lines(group, 0))


def _graph_lines(group: GroupNode, depth: int) -> list[str]:
    lines = [_graph_name(f"@{group.name}:", depth)]
    for child in group.children:
        lines.extend(_graph_lines(child, depth + 1))
    if group.name != "all":
        lines.extend(_graph_name(h.name, depth + 1) for h in group.hosts)
    return lines


def _graph_name(name: str, depth: int) -> str:
    return "  |" * depth + "--" + name if depth else name
