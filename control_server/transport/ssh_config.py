"""The host-key options of ``ssh_config`` for one host, read the way ssh reads them.

Pure Python, shared by both transports and the CLI: which name and port ssh connects to,
``HostKeyAlias``, ``UserKnownHostsFile`` / ``GlobalKnownHostsFile`` (several paths each),
``StrictHostKeyChecking`` and ``ProxyJump``. First value wins, ``Host`` and ``Match``
(``all``, ``host``, ``originalhost``, ``user``, ``localuser``, ``final``) select blocks,
``Include`` is followed. Each file is parsed once per version (mtime), not per host.
"""

from __future__ import annotations

import functools
import getpass
import glob
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from control_server.transport.known_hosts import pattern_match

KEYWORDS = ("hostname", "port", "user", "hostkeyalias", "userknownhostsfile",
            "globalknownhostsfile", "stricthostkeychecking", "proxyjump")
_MULTI = ("userknownhostsfile", "globalknownhostsfile")
_MAX_INCLUDE_DEPTH = 16

Item = tuple[str, tuple[str, ...]]  # (keyword, args); 'host'/'match'/'include' included


@dataclass(frozen=True)
class HostConfig:
    """What ssh_config says about one host (None: not set)."""

    hostname: str
    port: int | None = None
    user: str | None = None
    host_key_alias: str | None = None
    user_known_hosts: tuple[str, ...] | None = None
    global_known_hosts: tuple[str, ...] | None = None
    strict: str | None = None  # the raw StrictHostKeyChecking value, lowercased
    proxy_jump: str | None = None


def _words(line: str) -> list[str]:
    head, sep, rest = line.partition("=")
    if sep and " " not in head.strip() and "\t" not in head.strip():
        line = f"{head.strip()} {rest.strip()}"
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


@dataclass(frozen=True)
class _Section:
    """A ``Host`` or ``Match`` line and the options under it (kind '' before the first)."""

    kind: str
    args: tuple[str, ...]
    options: tuple[Item, ...]


@dataclass(frozen=True)
class _Config:
    """One file's sections, indexed: a ``Host`` of plain names is found through ``exact``,
    so a fleet's aliases cost a dict hit per host, not a scan of every block."""

    sections: tuple[_Section, ...]
    exact: dict[str, tuple[int, ...]]
    general: tuple[int, ...]  # wildcards, negations, Match, leading options: always tried

    def candidates(self, host: str) -> list[int]:
        return sorted(set(self.general).union(self.exact.get(host.lower(), ())))


def _sections(items: list[Item]) -> _Config:
    sections: list[_Section] = []
    kind: str = ""  # options before the first Host apply to every host
    args: tuple[str, ...] = ()
    options: list[Item] = []
    for keyword, words in [*items, ("host", ())]:
        if keyword in ("host", "match"):
            sections.append(_Section(kind, args, tuple(options)))
            kind, args, options = keyword, words, []
        else:
            options.append((keyword, words))
    exact: dict[str, list[int]] = {}
    general: list[int] = []
    for index, section in enumerate(sections):
        plain = section.kind == "host" and not any(
            a.startswith("!") or "*" in a or "?" in a for a in section.args)
        if not plain:
            general.append(index)
        for name in section.args if plain else ():
            exact.setdefault(name.lower(), []).append(index)
    return _Config(tuple(sections), {k: tuple(v) for k, v in exact.items()}, tuple(general))


@functools.lru_cache(maxsize=32)
def _parse(path: str, mtime_ns: int) -> _Config:
    items: list[Item] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            words = _words(raw.strip())
            if words:
                items.append((words[0].lower(), tuple(words[1:])))
    return _sections(items)


def _config(path: str) -> _Config | None:
    try:
        return _parse(path, os.stat(path).st_mtime_ns)
    except OSError:
        return None


def _includes(args: tuple[str, ...], base: str) -> Iterator[str]:
    for arg in args:
        pattern = os.path.expanduser(arg)
        if not os.path.isabs(pattern):
            pattern = os.path.join(base, pattern)
        yield from sorted(glob.glob(pattern))


class _Resolver:
    def __init__(self, host: str, user: str | None) -> None:
        self.original = host
        self.user = user
        self.values: dict[str, tuple[str, ...]] = {}

    def current_host(self) -> str:
        return self.values.get("hostname", (self.original,))[0].replace("%h", self.original)

    def _match(self, args: tuple[str, ...]) -> bool:
        words, i = list(args), 0
        while i < len(words):
            word, i = words[i].lower(), i + 1
            negate, word = word.startswith("!"), word.lstrip("!")
            if word in ("all", "final"):
                ok = True
            elif word == "canonical":
                ok = False
            elif i >= len(words):
                return False
            else:
                arg, i = words[i], i + 1
                subject = {"host": self.current_host(), "originalhost": self.original,
                           "user": self.user or "", "localuser": _local_user()}.get(word)
                # exec and unknown criteria never match: hostplane runs no config commands
                ok = subject is not None and pattern_match(subject.lower(),
                                                           arg.lower().split(","))
            if ok == negate:
                return False
        return True

    def _active(self, section: _Section) -> bool:
        if section.kind == "host":
            return pattern_match(self.original.lower(), [a.lower() for a in section.args])
        return section.kind == "" or self._match(section.args)

    def walk(self, path: str, depth: int = 0) -> None:
        config = _config(path)
        if config is None:
            return
        base = os.path.expanduser("~/.ssh")
        for index in config.candidates(self.original):
            section = config.sections[index]
            if not self._active(section):
                continue
            for keyword, args in section.options:
                if keyword == "include" and depth < _MAX_INCLUDE_DEPTH:
                    for included in _includes(args, base):
                        self.walk(included, depth + 1)
                elif keyword in KEYWORDS and args and keyword not in self.values:
                    self.values[keyword] = args if keyword in _MULTI else (args[0],)


@functools.lru_cache(maxsize=1)
def _local_user() -> str:
    return getpass.getuser()


def _expand(path: str, host: str, port: int | None, user: str | None) -> str:
    if "%" not in path:
        return os.path.expanduser(path) if path.startswith("~") else path
    table = {"%d": os.path.expanduser("~"), "%u": _local_user(), "%h": host,
             "%p": str(port or 22), "%r": user or _local_user(), "%%": "%"}
    out, i = [], 0
    while i < len(path):
        token = path[i:i + 2]
        if token in table:
            out.append(table[token])
            i += 2
        else:
            out.append(path[i])
            i += 1
    return os.path.expanduser("".join(out))


def resolve(config: str | None, host: str, user: str | None = None) -> HostConfig:
    """``host`` as ssh_config ``config`` (a path; None or missing: nothing) describes it."""
    resolver = _Resolver(host, user)
    if config:
        resolver.walk(os.path.expanduser(config))
    v = resolver.values
    hostname = resolver.current_host()
    try:
        port = int(v["port"][0]) if "port" in v else None
    except ValueError:
        port = None
    user = v["user"][0] if "user" in v else user

    def files(key: str) -> tuple[str, ...] | None:
        if key not in v:
            return None
        if [a.lower() for a in v[key]] == ["none"]:
            return ()
        return tuple(_expand(p, hostname, port, user) for p in v[key])

    jump = v.get("proxyjump", (None,))[0]
    return HostConfig(
        hostname=hostname, port=port, user=user,
        host_key_alias=v["hostkeyalias"][0] if "hostkeyalias" in v else None,
        user_known_hosts=files("userknownhostsfile"),
        global_known_hosts=files("globalknownhostsfile"),
        strict=v["stricthostkeychecking"][0].lower() if "stricthostkeychecking" in v else None,
        proxy_jump=None if jump is None or jump.lower() == "none" else jump,
    )
