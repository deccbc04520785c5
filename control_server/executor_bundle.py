"""The executor zipapp, and the shell commands that run and upload it on a host.

The zipapp holds the installed ``host_executor`` package's ``*.py`` files, and
``host_executor/zipmain.py`` as its ``__main__.py`` (it unpacks the zipapp once on the
host, then hands over to ``host_executor.start.run``, which loads the hot modules from one
code cache file). It is deterministic (sorted entries, fixed timestamps), and its digest is the SHA-256 of the file names and contents (first 16
hex digits), so the same sources always give the same ``hostplane-executor-<digest>.pyz``,
here and on every host. The digest is also embedded as ``_digest.txt`` (not part of the
digest), which is how the executor reports it in ``hello``.

On a host, the zipapp lives in a 0700 cache folder (default ``$HOME/.cache/hostplane``,
expanded by the remote shell). ``launcher_command`` runs it if present (with
``HOSTPLANE_CACHE_DIR`` set to that folder, so journals and locks live beside it), else
prints ``protocol.MISSING_MARKER`` and exits ``protocol.EXIT_MISSING`` without reading stdin;
``upload_command`` writes stdin to it atomically.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import host_executor
from host_executor import protocol

DEFAULT_REMOTE_DIR = "$HOME/.cache/hostplane"
ENV_CONTROL_CACHE_DIR = "HOSTPLANE_CONTROL_CACHE_DIR"
DIGEST_LENGTH = 16

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_DIGEST_RE = re.compile(r"^[0-9a-f]{8,64}$")

# The launcher and the upload take every variable part as a positional argument of
# ``sh -c``, so nothing from the inventory is ever parsed as shell code.
_PREFIX = protocol.EXECUTOR_NAME_PREFIX
_SUFFIX = protocol.EXECUTOR_NAME_SUFFIX
#
# The interpreter runs with ``-I -S`` (the executor is stdlib-only: no ``site``, .pth files,
# sitecustomize, user site or PYTHON* variables, ~5-10 ms of CPU on every host start); the
# libvirt actions add the site directories themselves when they need the bindings
# (``host_executor.site_packages``). Once the zipapp was unpacked (``zipmain``, first run),
# its copy's ``__main__.py`` runs directly: no zipimport, no runpy, cached bytecode.
PYTHON_FLAGS = ("-I", "-S")
_FLAGS = " ".join(PYTHON_FLAGS)
_LAUNCH_SCRIPT = (
    f'd="$1"; f="$1/{_PREFIX}$3{_SUFFIX}"; u="$1/{_PREFIX}$3.d/__main__.py"; p="$2"; shift 3; '
    'if [ -f "$f" ]; then HOSTPLANE_CACHE_DIR="$d"; export HOSTPLANE_CACHE_DIR; '
    f'if [ -f "$u" ]; then exec "$p" {_FLAGS} "$u" "$@"; fi; '
    f'exec "$p" {_FLAGS} "$f" "$@"; fi; '
    f"echo {protocol.MISSING_MARKER}; exit {protocol.EXIT_MISSING}"
)
_UPLOAD_SCRIPT = (
    'umask 077; t=""; mkdir -p "$1" && chmod 700 "$1" && '
    f't="$1/.{_PREFIX}$2{_SUFFIX}.$$" && cat > "$t" && '
    f'mv -f "$t" "$1/{_PREFIX}$2{_SUFFIX}" || {{ [ -z "$t" ] || rm -f "$t"; exit 1; }}'
)


@dataclass(frozen=True)
class Bundle:
    """A built executor zipapp: where it is cached, its digest, its bytes."""

    path: Path
    digest: str
    data: bytes

    @property
    def filename(self) -> str:
        return executor_filename(self.digest)


def executor_filename(digest: str) -> str:
    return f"{protocol.EXECUTOR_NAME_PREFIX}{digest}{protocol.EXECUTOR_NAME_SUFFIX}"


def default_cache_dir() -> Path:
    """The control server's own cache: ``$HOSTPLANE_CONTROL_CACHE_DIR`` or
    ``~/.cache/hostplane/control`` (apart from the executor's state on a local host)."""
    configured = os.environ.get(ENV_CONTROL_CACHE_DIR)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "hostplane" / "control"


def package_files() -> list[tuple[str, bytes]]:
    """``(archive name, content)`` of every module of the installed ``host_executor``,
    plus the zipapp's ``__main__.py``; sorted by name."""
    root = Path(host_executor.__file__).resolve().parent
    files = [("__main__.py", (root / "zipmain.py").read_bytes())]
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        files.append((f"host_executor/{rel.as_posix()}", path.read_bytes()))
    return sorted(files)


def compute_digest(files: Sequence[tuple[str, bytes]]) -> str:
    """SHA-256 over the names and contents, length-prefixed so no two layouts collide."""
    sha = hashlib.sha256()
    for name, data in sorted(files):
        encoded = name.encode("utf-8")
        sha.update(b"%d:%s\0%d:" % (len(encoded), encoded, len(data)))
        sha.update(data)
    return sha.hexdigest()[:DIGEST_LENGTH]


def zip_bytes(files: Sequence[tuple[str, bytes]], digest: str) -> bytes:
    """The zipapp's bytes: the same files always give the same bytes."""
    buf = io.BytesIO()
    entries = [*files, (protocol.EXECUTOR_DIGEST_FILE, (digest + "\n").encode("ascii"))]
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, whatever builds it
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return buf.getvalue()


# Built bundles by the sources' stat stamp and the folder: every job plans its hosts with
# one (serve: every request), and reading and hashing the sources cost more than a stat.
_BUILT: dict[tuple[object, ...], Bundle] = {}
_ROOTS: dict[str, str] = {}  # host_executor.__file__: its real folder


def sources_stamp() -> tuple[tuple[str, int, int, int], ...]:
    """``(path, mtime_ns, size, inode)`` of every executor source ``package_files`` reads:
    any edit, added or removed file changes it (a replaced file changes its inode)."""
    root = _ROOTS.get(host_executor.__file__)
    if root is None:  # (realpath is a few lstat calls a job)
        root = _ROOTS[host_executor.__file__] = os.path.dirname(
            os.path.realpath(host_executor.__file__))
    stamp = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                stamp.append((os.path.join(folder, name), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamp)


def build_bundle(cache_dir: Path | None = None) -> Bundle:
    """Build (or reuse from ``cache_dir``) the zipapp of the installed executor; the same
    ``Bundle`` again while no source changed and its file is still there."""
    key = (sources_stamp(), cache_dir if cache_dir is not None else default_cache_dir())
    built = _BUILT.get(key)
    if built is not None and built.path.is_file():
        return built
    _BUILT.clear()  # only the newest: a changed source leaves the old one unused
    built = _BUILT[key] = _build_bundle(cache_dir)
    return built


def _build_bundle(cache_dir: Path | None) -> Bundle:
    files = package_files()
    digest = compute_digest(files)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    path = folder / executor_filename(digest)
    if path.is_file():
        return Bundle(path, digest, path.read_bytes())
    data = zip_bytes(files, digest)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return Bundle(path, digest, data)


def build_executor(cache_dir: Path | None = None) -> tuple[Path, str]:
    """``(path, digest)`` of the cached zipapp; see ``build_bundle``."""
    bundle = build_bundle(cache_dir)
    return bundle.path, bundle.digest


def remote_dir_word(remote_dir: str) -> str:
    """``remote_dir`` as one shell word; a leading ``$HOME`` or ``~`` is left for the
    remote shell to expand, everything else is quoted."""
    for home in ("$HOME", "${HOME}", "~"):
        if remote_dir == home or remote_dir.startswith(home + "/"):
            rest = remote_dir[len(home) :]
            return '"$HOME"' + (shlex.quote(rest) if rest else "")
    return shlex.quote(remote_dir)


def _check_digest(digest: str) -> None:
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not an executor digest: {digest!r}")


def launcher_command(
    remote_dir: str = DEFAULT_REMOTE_DIR,
    python: str = "python3",
    digest: str = "",
    args: Sequence[str] = (),
) -> str:
    """One shell line: exec the cached executor with ``args``, or print the missing marker
    and exit ``EXIT_MISSING`` without touching stdin."""
    _check_digest(digest)
    words = ["hostplane-launcher", remote_dir_word(remote_dir), shlex.quote(python), digest]
    words += [shlex.quote(arg) for arg in args]
    return f"exec sh -c {shlex.quote(_LAUNCH_SCRIPT)} " + " ".join(words)


def upload_command(remote_dir: str = DEFAULT_REMOTE_DIR, digest: str = "") -> str:
    """One shell line: write stdin to the cached executor's place atomically (0700 folder,
    0600 file, temp file then ``mv``)."""
    _check_digest(digest)
    words = ["hostplane-upload", remote_dir_word(remote_dir), digest]
    return f"exec sh -c {shlex.quote(_UPLOAD_SCRIPT)} " + " ".join(words)
