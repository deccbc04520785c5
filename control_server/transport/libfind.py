"""A quick ``ctypes.util.find_library`` for libraries that are not installed.

asyncssh asks at import whether liboqs is there (for the sntrup761 key exchange); on Linux
``find_library`` runs ``ldconfig -p`` (then gcc or ld) for each name it tries: ~20 ms of
CPU and several child processes on every hostplane start, and most machines have no
liboqs. When no ``lib<name>.so*`` is in any directory the dynamic linker or those
fallbacks search (LD_LIBRARY_PATH, LIBRARY_PATH, /etc/ld.so.conf and its includes, the
default directories), the answer is None without asking; otherwise the real lookup runs.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import glob
import os
from collections.abc import Iterator

_DEFAULT_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def _conf_dirs(path: str, depth: int = 0) -> list[str]:
    dirs: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return dirs
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line.startswith("include") and line[7:8] in (" ", "\t") and depth < 8:
            pattern = line[8:].strip()
            pattern = pattern if pattern.startswith("/") else os.path.join("/etc", pattern)
            for included in sorted(glob.glob(pattern)):
                dirs += _conf_dirs(included, depth + 1)
        elif line:
            dirs.append(line)
    return dirs


def search_dirs() -> list[str]:
    env = [d for var in ("LD_LIBRARY_PATH", "LIBRARY_PATH")
           for d in os.environ.get(var, "").split(":") if d]
    dirs = env + _conf_dirs("/etc/ld.so.conf") + list(_DEFAULT_DIRS)
    multiarch = glob.glob("/usr/lib/*-linux-gnu") + glob.glob("/lib/*-linux-gnu")
    return list(dict.fromkeys(dirs + multiarch))


def present(name: str, dirs: list[str]) -> bool:
    """Whether a file find_library could answer for ``name`` exists in ``dirs``."""
    return any(glob.glob(os.path.join(glob.escape(d), f"lib{glob.escape(name)}.so*"))
               or glob.glob(os.path.join(glob.escape(d), f"lib{glob.escape(name)}.a"))
               for d in dirs)


@contextlib.contextmanager
def quick_find_library() -> Iterator[None]:
    """Within the block, ``ctypes.util.find_library`` answers None at once for a library
    with no file anywhere it could be found."""
    real = ctypes.util.find_library
    dirs: list[str] | None = None

    def find(name: str) -> str | None:
        nonlocal dirs
        if dirs is None:
            dirs = search_dirs()
        return real(name) if present(name, dirs) else None

    ctypes.util.find_library = find
    try:
        yield
    finally:
        ctypes.util.find_library = real
