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


@functools.lru_cache(maxsize=32)
def _parse(path: str, mtime_ns: int) -> tuple[Item, ...]:
    items: list[Item] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            words = _words(raw.strip())
            if words:
                items.append((words[0].lower(), tuple(words[1:])))
    return tuple(items)


def _items(path: str) -> tuple[Item, ...]:
    try:
        return _parse(path, os.stat(path).st_mtime_ns)
    except OSError:
        return ()


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
                           "user": self.user or "", "localuser": getpass.getuser()}.get(word)
                # exec and unknown criteria never match: hostplane runs no config commands
                ok = subject is not None and pattern_match(subject.lower(),
                                                           arg.lower().split(","))
            if ok == negate:
                return False
        return True

    def walk(self, path: str, depth: int = 0) -> None:
        active = True
        base = os.path.expanduser("~/.ssh")
        for keyword, args in _items(path):
            if keyword == "host":
                active = pattern_match(self.original.lower(), [a.lower() for a in args])
            elif keyword == "match":
                active = self._match(args)
            elif not active:
                continue
            elif keyword == "include" and depth < _MAX_INCLUDE_DEPTH:
                for included in _includes(args, base):
                    self.walk(included, depth + 1)
            elif keyword in KEYWORDS and args and keyword not in self.values:
                self.values[keyword] = args if keyword in _MULTI else (args[0],)


def _expand(path: str, host: str, port: int | None, user: str | None) -> str:
    table = {"%d": os.path.expanduser("~"), "%u": getpass.getuser(), "%h": host,
             "%p": str(port or 22), "%r": user or getpass.getuser(), "%%": "%"}
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
