"""The sshd endpoint (``HostName:Port``) a host name leads to, read from ssh_config the way
ssh does for these keywords, and the host key known_hosts records for it: the handshake
limiter keys its windows by sshd rather than by inventory name (several aliases, or several
addresses of one sshd, share one ``MaxStartups``).

Grouping only: nothing here decides whether a key is trusted (the transport does that).

Deliberately small: ``Host`` blocks (patterns, ``!negation``, first value wins), ``%h`` in
HostName, ``Include`` of plain paths. ``Match`` blocks are skipped: the result only groups
handshakes, a rare miss costs a shared window, never a wrong connection.
"""

from __future__ import annotations

import base64
import functools
import glob
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "~/.ssh/config"
Block = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


def _parse_lines(path: Path, depth: int = 0) -> list[Block]:
    blocks: list[Block] = []
    patterns: tuple[str, ...] = ("*",)  # lines before the first Host apply to every host
    values: list[tuple[str, str]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.replace("=", " ", 1).partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key in ("host", "match"):
            blocks.append((patterns, tuple(values)))
            patterns = tuple(value.split()) if key == "host" else ()
            values = []
        elif key == "include" and depth < 8:
            blocks.append((patterns, tuple(values)))
            values = []
            for inc in value.split():
                full = os.path.join(path.parent, os.path.expanduser(inc))
                for name in sorted(glob.glob(full)):
                    for pats, vals in _parse_lines(Path(name), depth + 1):
                        both = pats if patterns == ("*",) else patterns  # nested Host: approx.
                        blocks.append((both, vals))
        elif key in ("hostname", "port", "userknownhostsfile"):
            values.append((key, value))
    blocks.append((patterns, tuple(values)))
    return blocks


def _plain(pattern: str) -> bool:
    return not pattern.startswith("!") and "*" not in pattern and "?" not in pattern


@dataclass(frozen=True)
class _Indexed:
    """A file's blocks, or known_hosts lines, with the plain names in a dict: a lookup
    costs a dict hit plus the wildcard/negated/hashed entries, not a scan of the file."""

    items: tuple[Any, ...]
    exact: dict[str, tuple[int, ...]]
    general: tuple[int, ...]

    def candidates(self, names: tuple[str, ...]) -> list[Any]:
        found = set(self.general)
        for name in names:
            found.update(self.exact.get(name.lower(), ()))
        return [self.items[i] for i in sorted(found)]


def _index(items: list[Any], patterns_of: Callable[[Any], list[str] | None]) -> _Indexed:
    exact: dict[str, list[int]] = {}
    general: list[int] = []
    for i, item in enumerate(items):
        patterns = patterns_of(item)
        if patterns is None or not all(_plain(p) for p in patterns):
            general.append(i)
            continue
        for pattern in dict.fromkeys(p.lower() for p in patterns):
            exact.setdefault(pattern, []).append(i)
    return _Indexed(tuple(items), {k: tuple(v) for k, v in exact.items()}, tuple(general))


@functools.lru_cache(maxsize=32)
def _parsed(path: str, mtime_ns: int) -> _Indexed:
    return _index(_parse_lines(Path(path)), lambda block: list(block[0]) or None)


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """ssh patterns know only ``*`` and ``?`` (fnmatch's ``[...]`` would eat ``[host]:port``)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts) + r"\Z", re.S)


def _fits(name: str, pattern: str) -> bool:
    return _glob(pattern).match(name.lower()) is not None


def _matches(patterns: tuple[str, ...], name: str) -> bool:
    hit = False
    for pat in patterns:
        negated = pat.startswith("!")
        if _fits(name, pat.lstrip("!")):
            if negated:
                return False
            hit = True
    return hit


def _config_values(name: str, configs: Sequence[str | Path] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for config in configs if configs is not None else [DEFAULT_CONFIG]:
        path = Path(config).expanduser()
        try:
            blocks = _parsed(str(path), path.stat().st_mtime_ns)
        except OSError:
            continue
        for patterns, values in blocks.candidates((name,)):
            if _matches(patterns, name):
                for key, value in values:
                    found.setdefault(key, value)
    return found


def _host_matches(field_: str, names: tuple[str, ...]) -> bool:
    if field_.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(p) for p in field_[3:].split("|", 1))
        except ValueError:
            return False
        return any(hmac.compare_digest(
            hmac.new(salt, n.encode(), hashlib.sha1).digest(), digest) for n in names)
    pats = field_.split(",")
    if any(p.startswith("!") and _fits(n, p[1:]) for p in pats for n in names):
        return False
    return any(_fits(n, p) for p in pats for n in names)


@functools.lru_cache(maxsize=32)
def _known_lines(path: str, mtime_ns: int) -> _Indexed:
    out = []
    with open(path, errors="replace") as fh:
        for line in fh:
            words = line.split()
            if len(words) >= 3 and not words[0].startswith(("#", "@")):
                out.append((words[0], words[2]))
    return _index(out, lambda line: None if line[0].startswith("|") else line[0].split(","))


def recorded_key(host: str, port: int, files: Sequence[str | Path]) -> str | None:
    """The base64 blob of the first key recorded for ``host``/``port``, if any."""
    names = (host.lower(),) if port == 22 else (f"[{host.lower()}]:{port}",)
    for name in files:
        path = Path(name).expanduser()
        try:
            lines = _known_lines(str(path), path.stat().st_mtime_ns)
        except OSError:
            continue
        for hosts, blob in lines.candidates(names):
            if _host_matches(hosts, names):
                return str(blob)
    return None


def sshd_identity(name: str, port: int | None, configs: Sequence[str | Path] | None,
                  known_hosts: Path | None = None) -> tuple[str, str | None]:
    """``(endpoint, recorded host key or None)`` for ``name``: ``known_hosts`` given wins
    over ssh_config's ``UserKnownHostsFile``, else ``~/.ssh/known_hosts``."""
    found = _config_values(name, configs)
    endpoint = _endpoint(name, port, found)
    host, _, port_text = endpoint.rpartition(":")
    files: list[str | Path] = list(found.get("userknownhostsfile", "~/.ssh/known_hosts").split())
    if known_hosts is not None:
        files = [known_hosts]
    return endpoint, recorded_key(host.strip("[]"), int(port_text), files)


def ssh_endpoint(name: str, port: int | None, configs: Sequence[str | Path] | None) -> str:
    """``host:port`` that ssh would connect to for ``name`` (an explicit ``port`` wins)."""
    return _endpoint(name, port, _config_values(name, configs))


def _endpoint(name: str, port: int | None, found: dict[str, str]) -> str:
    host = found.get("hostname", name).replace("%h", name)
    if port is None:
        try:
            port = int(found.get("port", "22"))
        except ValueError:
            port = 22
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
