"""known_hosts lookup exactly as OpenSSH does it, shared by both SSH transports.

Pure Python (no asyncssh, no paramiko): the transports feed it the name ssh connects to
and get back every recorded line that matches, with its file and line number, so a
changed key is reported as a mismatch naming the line that records the old one.

OpenSSH rules followed here: the name looked up is ``HostKeyAlias`` if set, else the
HostName, as ``[host]:port`` unless the port is 22; names are compared case-insensitively;
a line matches when one of its patterns matches and none of its ``!negated`` ones does;
``|1|salt|hash`` lines are HMAC-SHA1 of the name; ``@cert-authority`` lines hold CA keys,
``@revoked`` lines keys that are refused wherever they appear; every file is consulted
(user files, then global ones).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_USER_FILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class Entry:
    """One key line of a known_hosts file."""

    path: str
    line: int
    marker: str  # '' | 'cert-authority' | 'revoked'
    keytype: str
    key: str  # base64 blob

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def public_key(self) -> str:
        return f"{self.keytype} {self.key}"


@dataclass
class _Parsed:
    """One file, indexed so a lookup costs O(1) for plain names: literal patterns in a
    dict; wildcard or negated lines, and hashed ones, in lists."""

    exact: dict[str, list[Entry]] = field(default_factory=dict)
    patterned: list[tuple[tuple[str, ...], Entry]] = field(default_factory=list)
    hashed: list[tuple[bytes, bytes, Entry]] = field(default_factory=list)


@dataclass(frozen=True)
class Lookup:
    """Every recorded line for ``name``, in file order (user files first)."""

    name: str
    files: tuple[str, ...]
    keys: tuple[Entry, ...] = ()
    cas: tuple[Entry, ...] = ()
    revoked: tuple[Entry, ...] = ()

    @property
    def known(self) -> bool:
        """Any entry at all: accept-new then never adds a key for this host."""
        return bool(self.keys or self.cas)

    def recorded(self) -> str:
        entries = self.keys or self.cas
        return ", ".join(e.where for e in entries)

    def revoked_entry(self, public_key: str) -> Entry | None:
        blob = public_key.split()[1] if " " in public_key else public_key
        return next((e for e in self.revoked if e.key == blob), None)


def lookup_name(host: str, port: int | None, alias: str | None = None) -> str:
    """The name ssh writes and looks up: the alias verbatim, or ``[host]:port``."""
    if alias:
        return alias.lower()
    host = host.lower()
    return host if port in (None, 22) else f"[{host}]:{port}"


def _split_marker(words: list[str]) -> tuple[str, list[str]]:
    if words and words[0].startswith("@"):
        return words[0][1:].lower(), words[1:]
    return "", words


def _parse_text(path: str, text: str) -> _Parsed:
    parsed = _Parsed()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker, words = _split_marker(line.split())
        if len(words) < 3 or marker not in ("", "cert-authority", "revoked"):
            continue  # as ssh: a line it cannot read is skipped, not fatal
        entry = Entry(path, number, marker, words[1], words[2])
        _index(parsed, words[0], entry)
    return parsed


def _index(parsed: _Parsed, hosts: str, entry: Entry) -> None:
    if hosts.startswith("|1|"):
        try:
            _, _, salt, digest = hosts.split("|", 3)
            parsed.hashed.append((base64.b64decode(salt), base64.b64decode(digest), entry))
        except (ValueError, binascii.Error):
            pass
        return
    patterns = tuple(p.lower() for p in hosts.split(",") if p)
    if any(p.startswith("!") or "*" in p or "?" in p for p in patterns):
        parsed.patterned.append((patterns, entry))
        return
    for pattern in patterns:
        parsed.exact.setdefault(pattern, []).append(entry)


@functools.lru_cache(maxsize=64)
def _parse_file(path: str, mtime_ns: int, size: int) -> _Parsed:
    """Parsed once per file version: a fleet's lookups must not re-read the file."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return _parse_text(path, fh.read())


def parsed(path: str) -> _Parsed | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        return _parse_file(path, st.st_mtime_ns, st.st_size)
    except OSError:
        return None


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    """ssh's match_pattern: only ``*`` and ``?`` are special (``[`` is literal)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def pattern_match(name: str, patterns: Sequence[str]) -> bool:
    """One positive pattern matches and no negated one does (ssh's match_hostname)."""
    hit = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if name == body if "*" not in body and "?" not in body else _regex(body).match(name):
            if negated:
                return False  # a negated match rules the whole line out
            hit = True
    return hit


def _matches(pf: _Parsed, name: str) -> list[Entry]:
    found = list(pf.exact.get(name, ()))
    found += [e for patterns, e in pf.patterned if pattern_match(name, patterns)]
    encoded = name.encode()
    found += [e for salt, digest, e in pf.hashed
              if hmac.compare_digest(hmac.digest(salt, encoded, hashlib.sha1), digest)]
    found.sort(key=lambda e: e.line)
    return found


def expand(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    return tuple(os.path.expanduser(str(p)) for p in paths)


def lookup(files: Sequence[str], name: str) -> Lookup:
    keys: list[Entry] = []
    cas: list[Entry] = []
    revoked: list[Entry] = []
    for path in files:
        pf = parsed(path)
        if pf is None:
            continue
        for entry in _matches(pf, name):
            {"": keys, "cert-authority": cas, "revoked": revoked}[entry.marker].append(entry)
    return Lookup(name, tuple(files), tuple(keys), tuple(cas), tuple(revoked))


def fingerprint(public_key: str) -> str:
    """``SHA256:...`` as ssh prints it."""
    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError, binascii.Error):
        return "?"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


_APPEND = threading.Lock()  # paramiko connects in threads; asyncssh hosts share the loop


def append(path: str, name: str, public_key: str) -> Lookup | None:
    """Record a new host's key the way ssh does (``[addr]:port keytype base64``), unless
    the name got an entry meanwhile (several inventory hosts behind one sshd learn it
    at once). Returns that entry's lookup when it records a *different* key."""
    with _APPEND:
        found = lookup([path], name)
        if found.known:
            same = any(e.key == public_key.split()[1] for e in found.keys)
            return None if same else found
        target = Path(path)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with target.open("a", encoding="ascii") as fh:
            fh.write(f"{name} {public_key.strip()}\n")
    return None


def mismatch_message(found: Lookup, offered: str | None = None) -> str:
    key = f" ({offered.split()[0]} {fingerprint(offered)})" if offered else ""
    paths = {e.path for e in found.keys or found.cas}
    where = f" -f {paths.pop()}" if len(paths) == 1 else ""
    return (
        f"host key mismatch: the key offered for {found.name}{key} differs from the one "
        f"recorded at {found.recorded()} (possible man-in-the-middle, or the host was "
        f"rebuilt: check, then remove the old key with ssh-keygen -R '{found.name}'{where})"
    )


def revoked_message(found: Lookup, entry: Entry | None) -> str:
    where = f" at {entry.where}" if entry else ""
    return f"host key revoked: the key offered for {found.name} is listed @revoked{where}"


def unknown_message(found: Lookup) -> str:
    files = ", ".join(found.files) or "(no known_hosts file)"
    return (f"host key unknown: {found.name} is not in {files} "
            "(add its key, or use --host-key-checking accept-new)")
