"""Where the executor keeps its state on the host: ``~/.cache/hostplane`` (0700).

``$HOSTPLANE_CACHE_DIR`` overrides it. Journals live in ``journal/``, locks in ``locks/``.
Names that come from the request (request ids, lock names) are sanitized before they
become file names, so a request can never write outside these folders.
"""

from __future__ import annotations

import os

ENV_CACHE_DIR = "HOSTPLANE_CACHE_DIR"
# No ``re``: importing it costs every host start-up time.
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_MAX_NAME = 120


def cache_dir() -> str:
    """The executor's cache folder (not created)."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return configured
    return os.path.join(os.path.expanduser("~"), ".cache", "hostplane")


def ensure_dir(path: str) -> str:
    """Create ``path`` (and parents) private to this user; return it."""
    if not os.path.isdir(path):
        # Private from the start, so there is no window where others can read or create.
        old = os.umask(0o077)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        finally:
            os.umask(old)
    return path


def state_dir(kind: str) -> str:
    """A created sub-folder of the cache dir (``journal``, ``locks``)."""
    root = ensure_dir(cache_dir())
    return ensure_dir(os.path.join(root, kind))


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name``; distinct names stay distinct.

    When characters had to be replaced (or the name cut), a checksum of the original is
    appended, so ``a/b`` and ``a_b`` do not share a journal or a lock.
    """
    cleaned = name if _SAFE.issuperset(name) else "".join(c if c in _SAFE else "_" for c in name)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned != name or len(cleaned) > _MAX_NAME or not cleaned:
        import zlib

        crc = zlib.crc32(name.encode("utf-8", "surrogatepass")) & 0xFFFFFFFF
        cleaned = "%s-%08x" % (cleaned[:_MAX_NAME], crc)
    return cleaned
