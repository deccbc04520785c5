"""INI inventories, read line by line as ansible-core's ``ini`` plugin reads them.

Host lines are shell-split (``#`` starts a comment), ``key=value`` values are Python
literals; ``[g:vars]`` lines are ``key=value`` with the value typed the same way (ansible's
docs say "strings", its code literal-evaluates them, and the code is what counts);
``[g:children]`` may name groups defined later in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from control_server.errors import InventoryError
from control_server.inventory.addresses import has_invalid_group_chars
from control_server.inventory.model import (
    INVALID_GROUP_CHARS_WARNING,
    GraphError,
    InventoryGraph,
)
from control_server.inventory.ranges import RangeError, expand_hostpattern
from control_server.inventory.values import ValueLoadError, parse_ini_value
from control_server.inventory.words import split_words

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_COMMENT_MARKERS = ("#", ";")


class _LineError(Exception):
    """An error on the current line; the reader adds file and line."""


@dataclass
class _Pending:
    """A group named before it is defined: in [x:children], or by [x:vars]."""

    line: int
    state: str
    parents: list[str] = field(default_factory=list)


class IniReader:
    def __init__(self, graph: InventoryGraph, path: str) -> None:
        self.graph = graph
        self.path = path
        self.group = "ungrouped"
        self.state = "hosts"
        self.pending: dict[str, _Pending] = {}
        self.lineno = 0

    def read(self, text: str) -> None:
        for lineno, raw in enumerate(text.splitlines(), start=1):
            self.lineno = lineno
            line = raw.strip()
            if not line or line.startswith(_COMMENT_MARKERS):
                continue
            try:
                self._line(line)
            except (_LineError, GraphError, RangeError, ValueLoadError) as exc:
                raise InventoryError(str(exc), file=self.path, line=lineno) from None
        self._check_pending()

    def _line(self, line: str) -> None:
        section = _SECTION.match(line)
        if section:
            self._section(section.group(1), section.group(2))
        elif line.startswith("[") and line.endswith("]"):
            raise _LineError(
                f"Invalid section entry: {line!r}. Please make sure that there are no spaces "
                "in the section entry, and that there are no other invalid characters"
            )
        elif self.state == "hosts":
            self._hosts(line)
        elif self.state == "vars":
            self._var(line)
        else:
            self._child(line)

    def _section(self, name: str, kind: str | None) -> None:
        # ansible's default (TRANSFORM_INVALID_GROUP_CHARS=never) keeps such names as written.
        if has_invalid_group_chars(name):
            self.graph.warn(INVALID_GROUP_CHARS_WARNING)
        state = kind or "hosts"
        if state not in ("hosts", "children", "vars"):
            raise _LineError(f"Section [{name}:{kind}] has unknown type: {kind}")
        self.group, self.state = name, state
        if name not in self.graph.groups:
            # [g:vars] alone does not define g; it must be defined somewhere in this file.
            if state == "vars" and name not in self.pending:
                self.pending[name] = _Pending(self.lineno, "vars")
            self.graph.add_group(name)
        waiting = self.pending.get(name)
        if waiting is not None and state != "vars":
            if waiting.state == "children":
                self._resolve_children(name)
            elif waiting.state == "vars":
                del self.pending[name]

    def _resolve_children(self, group: str) -> None:
        for parent in self.pending[group].parents:
            self.graph.add_child(parent, group)
            up = self.pending.get(parent)
            if up is not None and up.state == "children":
                self._resolve_children(parent)
        self.pending.pop(group, None)

    def _hosts(self, line: str) -> None:
        try:
            tokens = split_words(line)  # shlex.split(line, comments=True), linear
        except ValueError as exc:
            raise _LineError(f"Error parsing host definition {line!r}: {exc}") from None
        if not tokens:
            raise _LineError(f"Expected a host definition, got: {line}")
        names, port = self._expand(tokens[0])
        variables: dict[str, Any] = {}
        for token in tokens[1:]:
            if "=" not in token:
                raise _LineError(f"Expected key=value host variable assignment, got: {token}")
            key, value = token.split("=", 1)
            variables[key] = parse_ini_value(value)
        for name in names:
            self.graph.add_host(name, group=self.group, port=port)
            for key, value in variables.items():
                self.graph.set_variable(name, key, value)

    @staticmethod
    def _expand(pattern: str) -> tuple[list[str], int | None]:
        names, port = expand_hostpattern(pattern)
        if pattern.strip().endswith(":") and port is None:
            raise _LineError(
                f"Invalid host pattern {pattern!r} supplied, ending in ':' is not allowed, this "
                "character is reserved to provide a port."
            )
        if any(name.strip() == "---" for name in names):
            raise _LineError(
                f"Invalid host pattern {pattern!r} supplied, '---' is normally a sign this is a "
                "YAML file."
            )
        return names, port

    def _var(self, line: str) -> None:
        if "=" not in line:
            raise _LineError(f"Expected key=value, got: {line}")
        key, value = (part.strip() for part in line.split("=", 1))
        self.graph.set_variable(self.group, key, parse_ini_value(value))

    def _child(self, line: str) -> None:
        match = _GROUP_NAME.match(line)
        if not match:
            raise _LineError(f"Expected group name, got: {line}")
        child = match.group(1)
        if child in self.graph.groups:
            self.graph.add_child(self.group, child)
        elif child in self.pending:
            self.pending[child].parents.append(self.group)
        else:
            self.pending[child] = _Pending(self.lineno, "children", [self.group])

    def _check_pending(self) -> None:
        # Like ansible, report only the first unresolved name, at the line naming it.
        for name, waiting in self.pending.items():
            if waiting.state == "vars":
                message = f"Section [{name}:vars] not valid for undefined group {name!r}."
            else:
                message = (
                    f"Section [{waiting.parents[-1]}:children] includes undefined group {name!r}."
                )
            raise InventoryError(message, file=self.path, line=waiting.line)


def read_ini(graph: InventoryGraph, path: str, text: str) -> None:
    IniReader(graph, path).read(text)
