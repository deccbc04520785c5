"""Host patterns and limits, evaluated the way ansible-core evaluates them.

``a:b``/``a,b`` union, ``&`` intersection, ``!`` exclusion (applied in that order whatever
the written order), globs and ``~regex`` over group and host names, ``[i]``/``[i:j]``/
``[i:]`` subscripts, and ``@file`` limits.  The order of the result is ansible's: groups in
definition order, each group's hosts as ``ansible --list-hosts`` shows them.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from control_server.errors import PatternError
from control_server.inventory.addresses import AddressError, parse_address
from control_server.inventory.model import LOCALHOST_NAMES, HostNode, InventoryGraph

_SUBSCRIPTED = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_COLON_SPLIT = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_GLOB_CHARS = (".", "?", "*", "[")
# A trailing [...] made of digits, '-' and ':' is meant as a subscript, never a glob class.
_SUBSCRIPT_LIKE = re.compile(r"^(.+)\[([-0-9:]*:[-0-9:]*|-[-0-9]*)\]$")


def split_host_pattern(pattern: str) -> list[str]:
    """'a,b[1], c[2:3] , d' -> ['a', 'b[1]', 'c[2:3]', 'd']; ':' separates too."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            # A host with a port, an IPv6 address or a range is one pattern, colons and all.
            parse_address(pattern, allow_ranges=True)
            parts = [pattern]
        except AddressError:
            parts = _COLON_SPLIT.findall(pattern)
            _check_leftover(pattern)
    return [p.strip() for p in parts if p.strip()]


def _check_leftover(pattern: str) -> None:
    # ansible drops what its split cannot read ('~[x' becomes '~', i.e. every host).
    at = 0
    for match in [*_COLON_SPLIT.finditer(pattern), None]:
        gap = pattern[at : match.start() if match else len(pattern)]
        stray = gap.replace(":", " ").strip()
        if stray:
            column = at + gap.index(stray[0]) + 1
            what = "']' without '['" if stray[0] == "]" else "'[' without ']'"
            raise PatternError(f"unbalanced brackets: {what} at column {column}", pattern)
        at = match.end() if match else at


def check_brackets(part: str, whole: str) -> None:
    """An unbalanced ``[``/``]`` in a glob part (a ``~regex`` is checked by compiling it)."""
    depth = 0
    for char in part:
        if char == "[" and depth == 0:
            depth = 1
        elif char == "]":
            if depth == 0:
                raise PatternError(f"unbalanced brackets: ']' without '[' in {part!r}", whole)
            depth = 0
    if depth:
        raise PatternError(f"unbalanced brackets: '[' without ']' in {part!r}", whole)


def order_patterns(patterns: Iterable[str]) -> list[str]:
    regular: list[str] = []
    intersect: list[str] = []
    exclude: list[str] = []
    for p in patterns:
        if not p:
            continue
        if p[0] == "!":
            exclude.append(p)
        elif p[0] == "&":
            intersect.append(p)
        else:
            regular.append(p)
    return (regular or ["all"]) + intersect + exclude


def read_limit(limit: str, cwd: Path) -> list[str]:
    """The patterns of a ``--limit`` value; ``@file`` reads one pattern per line."""
    result: list[str] = []
    for part in split_host_pattern(limit):
        if not part.startswith("@"):
            result.append(part)
            continue
        path = cwd / part[1:]
        if not path.exists():
            raise PatternError(f"Unable to find limit file {part[1:]}", limit)
        if not path.is_file():
            raise PatternError(
                f'Limit starting with "@" must be a file, not a directory: {part[1:]}', limit
            )
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise PatternError(
                f"cannot read limit file {part[1:]}: {exc.strerror}", limit
            ) from None
        result.extend(line.strip() for line in text.split("\n"))
    return result


class Matcher:
    """One evaluation (one ansible command): its caches and its implicit localhost."""

    def __init__(self, graph: InventoryGraph, warnings: list[str]) -> None:
        self.graph = graph
        self.warnings = warnings
        self.cache: dict[str, list[HostNode]] = {}
        self.implicit: HostNode | None = None

    def select(self, pattern: str, limit: list[str] | None) -> list[HostNode]:
        hosts = self.evaluate(split_host_pattern(pattern), pattern)
        if limit:
            allowed = {id(h) for h in self.evaluate(limit, pattern)}
            hosts = [h for h in hosts if id(h) in allowed]
        unique: list[HostNode] = []
        seen: set[int] = set()
        for host in hosts:
            if id(host) not in seen:
                seen.add(id(host))
                unique.append(host)
        if not unique and pattern in LOCALHOST_NAMES:
            # ansible --list-hosts falls back to the implicit localhost, limit or not.
            unique = [self._named_localhost(pattern)]
        return unique

    def evaluate(self, patterns: list[str], whole: str) -> list[HostNode]:
        hosts: list[HostNode] = []
        for p in order_patterns(patterns):
            if p in self.graph.hosts:
                hosts.append(self.graph.hosts[p])
                continue
            that = self.match_one(p, whole)
            if p[0] == "!":
                excluded = {id(h) for h in that}
                hosts = [h for h in hosts if id(h) not in excluded]
            elif p[0] == "&":
                kept = {id(h) for h in that}
                hosts = [h for h in hosts if id(h) in kept]
            else:
                existing = {h.name for h in hosts}
                hosts.extend(h for h in that if h.name not in existing)
        return hosts

    def match_one(self, pattern: str, whole: str) -> list[HostNode]:
        if pattern[0] in "&!":
            pattern = pattern[1:]
        if not pattern:
            raise PatternError("empty pattern after '&' or '!'", whole)
        if pattern not in self.cache:
            if pattern[0] != "~":
                check_brackets(pattern, whole)
            expr, subscript = split_subscript(pattern, self.warnings, whole)
            hosts = self.enumerate(expr, whole)
            self.cache[pattern] = apply_subscript(hosts, subscript, pattern, whole)
        return self.cache[pattern]

    def enumerate(self, pattern: str, whole: str) -> list[HostNode]:
        regex = _compile(pattern, whole)
        results: list[HostNode] = []
        groups = [g for name, g in self.graph.groups.items() if regex.match(name)]
        for group in groups:
            results.extend(group.all_hosts())
        if not groups or pattern[0] == "~" or any(c in pattern for c in _GLOB_CHARS):
            results.extend(h for name, h in self.graph.hosts.items() if regex.match(name))
        if not results and pattern in LOCALHOST_NAMES:
            results.append(self._localhost(pattern))
        if not results and not groups and pattern != "all":
            message = f"Could not match supplied host pattern, ignoring: {pattern}"
            if message not in self.warnings:
                self.warnings.append(message)
        return results

    def _localhost(self, name: str) -> HostNode:
        # The inventory's own localhost-like host, else one implicit host per evaluation.
        if self.graph.localhost is not None:
            return self.graph.localhost
        if self.implicit is None:
            self.implicit = implicit_localhost(name)
        return self.implicit

    def _named_localhost(self, name: str) -> HostNode:
        found = self.graph.hosts.get(name)
        if found is not None:
            return found
        if self.implicit is not None and self.implicit.name == name:
            return self.implicit
        return implicit_localhost(name)


def implicit_localhost(name: str) -> HostNode:
    host = HostNode(name, implicit=True)
    host.vars["ansible_python_interpreter"] = sys.executable or "/usr/bin/python"
    host.vars["ansible_connection"] = "local"
    return host


def _compile(pattern: str, whole: str) -> re.Pattern[str]:
    try:
        if pattern[0] == "~":
            return re.compile(pattern[1:])
        return re.compile(fnmatch.translate(pattern))
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternError(f"Invalid host list pattern: {pattern} ({exc})", whole) from None


def split_subscript(
    pattern: str, warnings: list[str], whole: str = ""
) -> tuple[str, tuple[int, int | None] | None]:
    if pattern[0] == "~":
        return pattern, None
    match = _SUBSCRIPTED.match(pattern)
    if not match:
        bad = _SUBSCRIPT_LIKE.match(pattern)
        if bad:
            raise PatternError(
                f"bad subscript [{bad.group(2)}] in {pattern!r}: use [i], [i:j] or [i:]",
                whole or pattern,
            )
        return pattern, None
    expr, index, start, sep, end = match.groups()
    if index:
        return expr, (int(index), None)
    if end and 0 < int(end) < int(start):
        raise PatternError(f"bad subscript in {pattern!r}: end before start", whole or pattern)
    if sep == "-":
        message = "Use [x:y] inclusive subscripts instead of [x-y] which has been removed"
        if message not in warnings:
            warnings.append(message)
    return expr, (int(start), int(end) if end else -1)


def apply_subscript(
    hosts: list[HostNode], subscript: tuple[int, int | None] | None, pattern: str, whole: str
) -> list[HostNode]:
    if not hosts or not subscript:
        return hosts
    start, end = subscript
    # An end of 0 (as in g[3:0]) reads as "no end", exactly like ansible's truthiness test.
    if end:
        if start >= len(hosts):
            raise PatternError(f"No hosts matched the subscripted pattern '{pattern}'", whole)
        if end == -1:
            end = len(hosts) - 1
        return hosts[start : end + 1]
    try:
        return [hosts[start]]
    except IndexError:
        raise PatternError(f"No hosts matched the subscripted pattern '{pattern}'", whole) from None
