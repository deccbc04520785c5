"""The inventory graph: groups, hosts and their relations, with ansible-core's semantics.

The mutable ``GroupNode``/``HostNode``/``InventoryGraph`` mirror the behaviour of
ansible-core's inventory data (insertion orders, group depths, the ``ungrouped``
bookkeeping) because host order and variable precedence are observable through them.
Only the frozen ``Host`` leaves this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from control_server.errors import InventoryError

# Ansible creates an implicit host for these names when a pattern asks for one of them and
# the inventory does not define it.
LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")

INVALID_GROUP_CHARS_WARNING = (
    "Invalid characters were found in group names but not replaced, use -vvvv to see details"
)


class FrozenVars(dict[Any, Any]):
    """A host's merged vars: a dict for json/jinja2, but refusing changes.

    Copies (``dict(v)``, ``copy.deepcopy``, pickling) are plain, mutable dicts.
    """

    __slots__ = ()

    def _refuse(self) -> NoReturn:
        raise TypeError("host vars are read-only; copy them with dict(host.vars)")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._refuse()

    def __delitem__(self, key: Any) -> None:
        self._refuse()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def clear(self) -> None:
        self._refuse()

    def pop(self, *args: Any) -> Any:
        self._refuse()

    def popitem(self) -> tuple[Any, Any]:
        self._refuse()

    def setdefault(self, *args: Any) -> Any:
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._refuse()

    def copy(self) -> dict[Any, Any]:
        return dict(self)

    def __reduce__(self) -> tuple[type[dict[Any, Any]], tuple[dict[Any, Any]]]:
        return (dict, (dict(self),))


@dataclass(frozen=True)
class Host:
    """One inventory host as the rest of hostplane sees it."""

    name: str
    # Merged by ansible's precedence; what `ansible-inventory --list` shows in _meta.hostvars.
    vars: Mapping[str, Any]
    # Every group the host is in, directly or through a parent; 'all' first, then by name.
    groups: tuple[str, ...]
    # True for ansible's implicit localhost: not in the inventory, not matched by 'all'.
    implicit: bool = field(default=False, compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.groups))


class GroupNode:
    __slots__ = ("children", "depth", "host_names", "hosts", "name", "parents", "priority", "vars")

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 0
        self.priority = 1
        self.hosts: list[HostNode] = []
        self.host_names: set[str] = set()
        self.vars: dict[Any, Any] = {}
        self.children: list[GroupNode] = []
        self.parents: list[GroupNode] = []

    def __repr__(self) -> str:
        return f"GroupNode({self.name!r})"

    def ancestors(self) -> list[GroupNode]:
        return _walk(self, "parents")

    def descendants(self) -> list[GroupNode]:
        """This group then its descendants, breadth first.

        ansible-core walks the same levels but visits the groups of one level in a hash
        order that changes from run to run; breadth-first list order is the stable
        reading of it (identical whenever ansible's own order is stable).
        """
        return [self, *_walk(self, "children")]

    def all_hosts(self) -> list[HostNode]:
        """Hosts of this group and its descendants, first appearance first."""
        found: list[HostNode] = []
        seen: set[str] = set()
        for group in self.descendants():
            for host in group.hosts:
                if host.name not in seen:
                    seen.add(host.name)
                    found.append(host)
        return found

    def add_host(self, host: HostNode) -> bool:
        if host.name in self.host_names:
            return False
        self.hosts.append(host)
        self.host_names.add(host.name)
        host.join(self)
        return True

    def remove_host(self, host: HostNode) -> None:
        if host.name not in self.host_names:
            return
        self.hosts.remove(host)
        self.host_names.discard(host.name)
        host.leave(self)

    def add_child(self, child: GroupNode) -> None:
        if child is self:
            raise GraphError(f"can't add group {self.name!r} to itself")
        if child in self.children:
            return
        start_ancestors = child.ancestors()
        new_ancestors = self.ancestors()
        if child in new_ancestors:
            raise GraphError(
                f"Adding group {child.name!r} as child to {self.name!r} creates a recursive "
                "dependency loop."
            )
        new_ancestors.append(self)
        additions = [g for g in new_ancestors if g not in start_ancestors]
        self.children.append(child)
        child.depth = max(self.depth + 1, child.depth)
        child.deepen_children()
        if self.name not in [g.name for g in child.parents]:
            child.parents.append(self)
            for host in child.all_hosts():
                host.add_ancestors(additions)

    def deepen_children(self) -> None:
        # Depth only ever grows: a group sits below its deepest parent.
        depth = self.depth
        seen: set[int] = set()
        frontier = list(self.children)
        while frontier:
            seen.update(id(g) for g in frontier)
            depth += 1
            nxt: list[GroupNode] = []
            for group in frontier:
                if group.depth < depth:
                    group.depth = depth
                    nxt.extend(group.children)
            if depth - self.depth > len(seen):
                raise GraphError(f"The group named {self.name!r} has a recursive dependency loop.")
            frontier = nxt


class HostNode:
    __slots__ = ("groups", "implicit", "name", "vars")

    def __init__(self, name: str, implicit: bool = False) -> None:
        self.name = name
        self.vars: dict[Any, Any] = {}
        self.groups: list[GroupNode] = []
        self.implicit = implicit

    def __repr__(self) -> str:
        return f"HostNode({self.name!r})"

    def join(self, group: GroupNode) -> None:
        self.add_ancestors(group.ancestors())
        if group not in self.groups:
            self.groups.append(group)

    def add_ancestors(self, groups: Iterable[GroupNode]) -> None:
        for group in groups:
            if group not in self.groups:
                self.groups.append(group)

    def leave(self, group: GroupNode) -> None:
        if group not in self.groups:
            return
        self.groups.remove(group)
        # Drop ancestors that only came through the group left, never 'all'.
        for old in group.ancestors():
            if old.name == "all":
                continue
            if not any(old in g.ancestors() for g in self.groups):
                self.leave(old)


class GraphError(Exception):
    """A relation the graph refuses; the parser turns it into an InventoryError."""


def _walk(start: GroupNode, relation: str) -> list[GroupNode]:
    ordered: list[GroupNode] = []
    seen: set[int] = {id(start)}
    frontier: list[GroupNode] = [start]
    while frontier:
        nxt: list[GroupNode] = []
        for group in frontier:
            for other in getattr(group, relation):
                if id(other) not in seen:
                    seen.add(id(other))
                    ordered.append(other)
                    nxt.append(other)
        frontier = nxt
    return ordered


class InventoryGraph:
    """Hosts and groups of all sources, mutated by the source parsers."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupNode] = {}
        self.hosts: dict[str, HostNode] = {}
        self.localhost: HostNode | None = None
        self.warnings: list[str] = []
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add_group(self, name: str) -> str:
        if not isinstance(name, str):
            raise GraphError(
                f"Invalid group name supplied, expected a string but got {type(name).__name__} "
                f"for {name!r}"
            )
        if not name:
            raise GraphError("Invalid empty/false group name provided")
        if name not in self.groups:
            self.groups[name] = GroupNode(name)
        return name

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> HostNode:
        if not isinstance(name, str):
            raise GraphError(f"Invalid host name supplied, expected a string but got {name!r}")
        if not name:
            raise GraphError("Invalid empty host name provided")
        target = None
        if group:
            target = self.groups.get(group)
            if target is None:
                raise GraphError(f"Could not find group {group} in inventory")
        host = self.hosts.get(name)
        if host is None:
            host = HostNode(name)
            self.hosts[name] = host
            # Only the first definition's port counts, as in ansible.
            if port:
                host.vars["ansible_port"] = int(port)
            if name in LOCALHOST_NAMES:
                if self.localhost is None:
                    self.localhost = host
                else:
                    self.warn(
                        f"A duplicate localhost-like entry was found ({name}). First found "
                        f"localhost was {self.localhost.name}"
                    )
        if target is not None:
            target.add_host(host)
        return host

    def set_variable(self, entity: str, key: Any, value: Any) -> None:
        # A name that is both a group and a host means the group, as in ansible.
        if entity in self.groups:
            _set_group_var(self.groups[entity], key, value)
        elif entity in self.hosts:
            self.hosts[entity].vars[key] = value
        else:
            raise GraphError(f"Could not identify group or host named {entity}")

    def add_child(self, group: str, child: str) -> None:
        parent = self.groups.get(group)
        if parent is None:
            raise GraphError(f"{group} is not a known group")
        if child in self.groups:
            parent.add_child(self.groups[child])
        elif child in self.hosts:
            parent.add_host(self.hosts[child])
        else:
            raise GraphError(f"{child} is not a known host nor group")

    def reconcile(self) -> None:
        """Apply ansible's rules after all sources: top groups under 'all', 'ungrouped'."""
        all_group = self.groups["all"]
        ungrouped = self.groups["ungrouped"]
        try:
            for group in list(self.groups.values()):
                if group is not all_group and not group.ancestors():
                    all_group.add_child(group)
        except GraphError as exc:
            raise InventoryError(str(exc)) from None
        for host in list(self.hosts.values()):
            if ungrouped in host.groups:
                if any(g is not all_group and g is not ungrouped for g in host.groups):
                    ungrouped.remove_host(host)
            elif not host.implicit and all(g is all_group for g in host.groups):
                # By name, like ansible: a group of the same name goes under 'ungrouped'.
                try:
                    self.add_child("ungrouped", host.name)
                except GraphError as exc:
                    raise InventoryError(str(exc)) from None
        for name in self.groups:
            if name in self.hosts:
                self.warn(f"Found both group and host with same name: {name}")


def _set_group_var(group: GroupNode, key: Any, value: Any) -> None:
    if key == "ansible_group_priority":
        # int() first, like ansible: a value int() refuses breaks the source.
        try:
            group.priority = int(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise GraphError(f"invalid ansible_group_priority {value!r}: {exc}") from None
        return
    group.vars[key] = value


def sort_groups(groups: Iterable[GroupNode]) -> list[GroupNode]:
    """Variable precedence order of groups: shallow first, then priority, then name."""
    return sorted(groups, key=lambda g: (g.depth, g.priority, g.name))
