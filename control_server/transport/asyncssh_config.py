"""The ssh_config asyncssh reads, cut down per host to the blocks that can apply to it.

asyncssh evaluates ``Host``/``Match`` while it parses, for one host at a time, so handing
it ``config=[path]`` makes every connection parse the whole file: a fleet whose config has
one ``Host`` block per host pays O(hosts) per connection, O(hosts²) a run. Here each file
is split once per version (mtime, size) into its blocks, the way asyncssh splits them
(same tokenizer, same ``keyword=value`` rule), and indexed: a ``Host`` of plain names is
found by name; the lines before the first ``Host``, ``Match`` blocks and ``Host`` lines
with a wildcard or a negation are kept for every host. asyncssh then parses, for one host,
only those blocks, verbatim and in file order, from a small file written once per
distinct cut: a block left out is one whose ``Host`` line names other hosts only, which
asyncssh would have skipped anyway (it matches ``Host`` against the original name), so
what it resolves (HostName, Port, User, IdentityFile, ProxyCommand, ciphers, every
option it knows) is what the whole file gives. A file the cut cannot split exactly (a
line asyncssh would refuse, an unreadable file) is passed whole, so its errors read as
before.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shlex
import shutil
import tempfile
import threading
from dataclasses import dataclass

DEFAULT_CONFIG = "~/.ssh/config"


@dataclass(frozen=True)
class _Blocks:
    blocks: tuple[str, ...]  # raw text of each block (block 0: lines before any Host)
    exact: dict[str, tuple[int, ...]]  # a plain Host name -> its blocks
    general: tuple[int, ...]  # blocks every host reads


def _keyword_args(line: str) -> tuple[str, list[str]] | None:
    """asyncssh's reading of a config line's keyword and (for Host/Match) its args; None
    where asyncssh would fail on it (then the file is passed whole)."""
    try:
        split_args = shlex.split(line)
    except ValueError:
        return None
    args: list[str] = []
    keyword = ""
    allow_equal = True
    for i, arg in enumerate(split_args, 1):
        if arg.startswith("="):
            if len(arg) > 1:
                args.append(arg[1:])
        elif not allow_equal:
            args.extend(split_args[i - 1:])
            break
        elif arg.endswith("="):
            args.append(arg[:-1])
        elif "=" in arg:
            head, value = arg.split("=", 1)
            args += [head, value]
        else:
            args.append(arg)
        if i == 1:
            if not args:
                return None
            keyword = args.pop(0).lower()
            allow_equal = keyword in ("host", "match")
    return keyword, args


def _split(text: str) -> _Blocks | None:
    blocks: list[list[str]] = [[]]
    exact: dict[str, list[int]] = {}
    general: list[int] = [0]
    for raw in text.splitlines(keepends=True):
        line = raw.strip()
        if line and not line.startswith("#"):
            parsed = _keyword_args(line)
            if parsed is None:
                return None
            keyword, args = parsed
            if keyword in ("host", "match"):
                blocks.append([])
                index = len(blocks) - 1
                names = [p for a in args for p in a.split(",")] if keyword == "host" else []
                if keyword == "match" or not names or any(
                        n.startswith("!") or "*" in n or "?" in n for n in names):
                    general.append(index)
                else:
                    for name in dict.fromkeys(n.lower() for n in names):
                        exact.setdefault(name, []).append(index)
            elif keyword == "include" and general[-1] != len(blocks) - 1:
                # asyncssh matches every line after an Include, whatever the Host: such
                # a block is read by every host, as the whole file would be
                general.append(len(blocks) - 1)
        blocks[-1].append(raw if raw.endswith("\n") else raw + "\n")
    return _Blocks(tuple("".join(b) for b in blocks),
                   {k: tuple(v) for k, v in exact.items()}, tuple(general))


@functools.lru_cache(maxsize=32)
def _parsed(path: str, mtime_ns: int, size: int) -> _Blocks | None:
    try:
        with open(path, encoding="utf-8") as fh:  # asyncssh's own open() (locale: UTF-8)
            return _split(fh.read())
    except (OSError, UnicodeDecodeError):
        return None


class _Cuts:
    """The small per-host files, one per distinct cut, in a private folder removed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folder: str | None = None
        self._written: dict[str, str] = {}

    def path_for(self, text: str) -> str:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()
        with self._lock:
            if digest in self._written:
                return self._written[digest]
            if self._folder is None:
                self._folder = tempfile.mkdtemp(prefix="hostplane-ssh-config-")
                atexit.register(shutil.rmtree, self._folder, True)
            path = os.path.join(self._folder, f"{digest}.conf")
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.write(text)
            self._written[digest] = path
            return path


_CUTS = _Cuts()

# Read after the user's files, so any Ciphers they set wins (ssh keeps the first value it
# obtains). AES-GCM first: as strong as ChaCha20-Poly1305, and asyncssh drives ChaCha from
# Python, ~12 µs a packet against ~2 µs (benchmarks: ~1 ms of control CPU a host).
PREFERENCES = ("Host *\n  Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
               "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr\n")


def preferences_file() -> str:
    """hostplane's defaults as an ssh_config file, to come last in ``config=``."""
    return _CUTS.path_for(PREFERENCES)


def config_for(config: str | os.PathLike[str] | None, host: str) -> list[str]:
    """The ``config=`` list to give ``asyncssh.connect`` for ``host``: ``config`` (None:
    ``~/.ssh/config`` when readable, as asyncssh's default) cut to the blocks that can
    apply to ``host``; [] when there is no file (asyncssh then reads none)."""
    if config is None:
        path = os.path.expanduser(DEFAULT_CONFIG)
        if not os.access(path, os.R_OK):
            return []
    else:
        path = os.path.expanduser(os.fspath(config))
    try:
        st = os.stat(path)
    except OSError:
        return [path]  # asyncssh says what is wrong with it
    blocks = _parsed(path, st.st_mtime_ns, st.st_size)
    if blocks is None:
        return [path]
    chosen = sorted(set(blocks.general).union(blocks.exact.get(host.lower(), ())))
    if len(chosen) == len(blocks.blocks):
        return [path]  # nothing to leave out
    return [_CUTS.path_for("".join(blocks.blocks[i] for i in chosen))]
