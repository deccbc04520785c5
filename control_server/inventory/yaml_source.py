"""YAML (and JSON) inventories, read as ansible-core's ``yaml`` plugin reads them.

Top-level keys are groups; a group holds ``hosts``, ``vars`` and ``children`` (each a
mapping, a single name, or null).  Values keep their YAML types.  Oddities ansible only
warns about (unknown keys, a group that is not a mapping) are warnings here too.
"""

from __future__ import annotations

from typing import Any

from control_server.errors import InventoryError
from control_server.inventory.addresses import has_invalid_group_chars
from control_server.inventory.model import (
    INVALID_GROUP_CHARS_WARNING,
    GraphError,
    InventoryGraph,
)
from control_server.inventory.ranges import RangeError, expand_hostpattern
from control_server.inventory.values import Document

_SECTIONS = ("vars", "children", "hosts")


class _YamlError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class YamlReader:
    def __init__(self, graph: InventoryGraph, path: str, doc: Document) -> None:
        self.graph = graph
        self.path = path
        self.doc = doc

    def read(self) -> None:
        data = self.doc.data
        try:
            for name, group_data in data.items():
                self._group(name, group_data, self.doc.line_of(data, name))
        except _YamlError as exc:
            raise InventoryError(str(exc), file=self.path, line=exc.line) from None

    def _group(self, name: Any, data: Any, line: int | None) -> Any:
        if not isinstance(data, dict | None):
            self.graph.warn(f"Skipping '{name}' as this is not a valid group definition")
            return name
        try:
            group = self.graph.add_group(name)
        except GraphError as exc:
            raise _YamlError(f"Unable to add group {name}: {exc}", line) from None
        if has_invalid_group_chars(group):
            self.graph.warn(INVALID_GROUP_CHARS_WARNING)
        if data is None:
            return group
        self._normalise_sections(group, data, line)
        for key, value in data.items():
            key_line = self.doc.line_of(data, key) or line
            if value is None:
                continue
            if not isinstance(value, dict):
                self.graph.warn(
                    f"Skipping key ({key}) in group ({group}) as it is not a mapping, it is a "
                    f"{_type_name(value)}"
                )
            elif key == "vars":
                self._vars(group, value, key_line)
            elif key == "children":
                self._children(group, value, key_line)
            elif key == "hosts":
                self._hosts(group, value, key_line)
            else:
                self.graph.warn(
                    f'Skipping unexpected key ({key}) in group ({group}), only "vars", '
                    '"children" and "hosts" are valid'
                )
        return group

    @staticmethod
    def _normalise_sections(group: str, data: dict[Any, Any], line: int | None) -> None:
        for section in _SECTIONS:
            if section not in data:
                continue
            if isinstance(data[section], str):
                # A bare name stands for a one-entry mapping; ansible rewrites it in place.
                data[section] = {data[section]: None}
            if not isinstance(data[section], dict | None):
                raise _YamlError(
                    f'Invalid "{section}" entry for "{group}" group, requires a dictionary, '
                    f'found "{_type_name(data[section])}" instead.',
                    line,
                )

    def _vars(self, group: str, values: dict[Any, Any], line: int | None) -> None:
        for key, value in values.items():
            try:
                self.graph.set_variable(group, key, value)
            except GraphError as exc:
                raise _YamlError(str(exc), self.doc.line_of(values, key) or line) from None

    def _children(self, group: str, children: dict[Any, Any], line: int | None) -> None:
        for name, data in children.items():
            child_line = self.doc.line_of(children, name) or line
            child = self._group(name, data, child_line)
            try:
                self.graph.add_child(group, child)
            except GraphError as exc:
                raise _YamlError(str(exc), child_line) from None

    def _hosts(self, group: str, hosts: dict[Any, Any], line: int | None) -> None:
        for pattern, host_vars in hosts.items():
            host_line = self.doc.line_of(hosts, pattern) or line
            if not isinstance(pattern, str):
                raise _YamlError(
                    f"Host pattern {pattern} must be a string. Enclose integers/floats in "
                    "quotation marks.",
                    host_line,
                )
            variables = host_vars or {}
            if not isinstance(variables, dict):
                raise _YamlError(
                    f"Invalid data from file, expected dictionary and got:\n\n{variables}",
                    host_line,
                )
            try:
                names, port = expand_hostpattern(pattern)
                for name in names:
                    self.graph.add_host(name, group=group, port=port)
                    for key, value in variables.items():
                        self.graph.set_variable(name, key, value)
            except (GraphError, RangeError) as exc:
                raise _YamlError(str(exc), host_line) from None


def _type_name(value: Any) -> str:
    return f"<class '{type(value).__name__}'>"


def read_yaml(graph: InventoryGraph, path: str, doc: Document) -> None:
    YamlReader(graph, path, doc).read()
