"""How the executor starts on a host: the unpacked copy, its code cache, a quick exit.

``python3 -I -S <copy>/__main__.py`` (the launcher, ``control_server.executor_bundle``)
imports this module and calls ``run``; so does the zipapp itself on its first run.

zipimport never caches bytecode, so a zipapp compiles every module it imports on every
run. So the first run unpacks the zipapp next to itself, ``hostplane-executor-<digest>.d/``
(a temp folder renamed into place, so it is complete or absent), and every later run
imports from there. The folder is named by the digest, so it never goes stale. When it
cannot be made (read-only cache, full disk), the executor simply runs from the zip.

The modules a ``command`` step needs (``HOT_MODULES``) come from one file of the copy,
``hot.<cache tag>-opt<level>.bin``: their code objects, compiled once per interpreter (the
first run that lacks the file writes it), read with one ``read`` and run in order, without
the import system's per-module search, ``stat`` calls and ``.pyc`` checks (about a
millisecond of CPU on every host start). Each module gets the ``__spec__``, ``__loader__``,
``__file__`` and ``__path__`` an ordinary import gives it, so every other module still
imports the ordinary way (and caches its bytecode in ``__pycache__``); any module the
file lacks, or a file that is missing, unreadable or from another interpreter, is simply
imported normally.

The run ends with ``os._exit`` once ``main`` returned (the journal closed and synced, every
event written with ``os.write``): tearing the interpreter down would cost another ~3 ms
of CPU on every host, for nothing.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, List, Optional, Tuple

_PACKAGE_MARK = os.path.join("host_executor", "__init__.py")
# Each one after the modules it imports at its top, so each runs with its imports in place
# (a module out of order is imported normally by the one that needs it: slower, still right).
HOT_MODULES = (
    "host_executor",
    "host_executor.jsonfast",
    "host_executor.paths",
    "host_executor.protocol",
    "host_executor.errors",
    "host_executor.journal",
    "host_executor.step",
    "host_executor.actions",
    "host_executor.request",
    "host_executor.watch",
    "host_executor.emitter",
    "host_executor.identity",
    "host_executor.main",
    "host_executor.proc",
    "host_executor.actions.command",
    "host_executor.runner",
)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def unpacked_dir(archive: str) -> Optional[str]:
    """The unpacked copy of ``archive`` (made on first use); None if it cannot be had."""
    root, ext = os.path.splitext(archive)
    if ext != ".pyz":
        return None
    target = root + ".d"
    if os.path.isfile(os.path.join(target, _PACKAGE_MARK)):
        return target
    tmp = "%s.%d.tmp" % (target, os.getpid())
    umask = os.umask(0o077)
    try:
        import zipfile

        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(tmp)
        os.rename(tmp, target)
    except Exception:
        # Another first run may have won the rename race: its copy is as good as ours.
        _remove_tree(tmp)
    finally:
        os.umask(umask)
    if os.path.isfile(os.path.join(target, _PACKAGE_MARK)):
        return target
    return None


def hot_cache_path(unpacked: str) -> Optional[str]:
    """Where this interpreter's code of ``HOT_MODULES`` lives; None if it has no cache tag."""
    tag = sys.implementation.cache_tag
    if not tag:
        return None
    return os.path.join(unpacked, "hot.%s-opt%d.bin" % (tag, sys.flags.optimize))


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _compile_hot(unpacked: str) -> List[Tuple[str, str, bool, Any]]:
    entries = []
    for name in HOT_MODULES:
        base = os.path.join(unpacked, *name.split("."))
        is_package = os.path.isdir(base)
        source = os.path.join(base, "__init__.py") if is_package else base + ".py"
        try:
            text = _read(source)
        except FileNotFoundError:
            continue  # gone from the package: imported (and reported) normally if needed
        # dont_inherit: this file's own ``from __future__`` must not leak into theirs.
        entries.append((name, source, is_package, compile(text, source, "exec", dont_inherit=True)))
    return entries


def _write_atomically(path: str, data: bytes) -> None:
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:  # a read-only copy: this run still uses what it compiled
        try:
            os.unlink(tmp)
        except OSError:
            pass


def hot_entries(unpacked: str) -> List[Tuple[str, str, bool, Any]]:
    """``(name, source path, is package, code)`` of ``HOT_MODULES``: from the cache file, or
    compiled (and the file written) when it is missing or not this interpreter's."""
    path = hot_cache_path(unpacked)
    magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
    if path is None or magic is None:
        return []
    try:
        stored, entries = marshal.loads(_read(path))
        if stored == magic and all(len(entry) == 4 for entry in entries):
            return list(entries)
    except (OSError, ValueError, EOFError, TypeError):
        pass  # missing, cut short, or another interpreter's: made again below
    entries = _compile_hot(unpacked)
    _write_atomically(path, marshal.dumps((magic, tuple(entries))))
    return entries


def load_hot(unpacked: str) -> None:
    """Run the modules of ``hot_entries`` as ``import`` would, each unless already loaded."""
    bootstrap = sys.modules.get("_frozen_importlib")
    external = sys.modules.get("_frozen_importlib_external")
    spec_type = getattr(bootstrap, "ModuleSpec", None)
    loader_type = getattr(external, "SourceFileLoader", None)
    if spec_type is None or loader_type is None:
        return
    try:
        entries = hot_entries(unpacked)
    except Exception:  # compiling failed: the ordinary import reports it
        return
    for name, path, is_package, code in entries:
        if name in sys.modules:
            continue
        try:
            _run_module(name, path, is_package, code, spec_type, loader_type)
        except Exception:
            sys.modules.pop(name, None)  # the ordinary import runs it again and reports it
            return


def _run_module(name: str, path: str, is_package: bool, code: Any, spec_type: Any,
                loader_type: Any) -> None:
    loader = loader_type(name, path)
    spec = spec_type(name, loader, origin=path, is_package=is_package)
    spec.has_location = True
    module = type(sys)(name)
    module.__spec__ = spec
    module.__loader__ = loader
    module.__file__ = path
    parent, _, child = name.rpartition(".")
    if is_package:
        module.__path__ = spec.submodule_search_locations = [os.path.dirname(path)]
        module.__package__ = name
    else:
        module.__package__ = parent
    sys.modules[name] = module
    exec(code, module.__dict__)
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)


def _exit(code: int) -> None:
    """End now: everything the executor wrote went out with ``os.write`` (and the journal
    was synced); only a stray ``print`` could sit in a buffer."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    os._exit(code)


def _forget_package() -> None:
    """Drop the zip's own ``host_executor`` modules (imported to get here), so that the
    run imports the unpacked copy's."""
    for name in [n for n in sys.modules if n == "host_executor" or n.startswith("host_executor.")]:
        del sys.modules[name]


def run(here: str) -> None:
    """Run the executor from ``here``: the zipapp (first run, or no copy can be made) or
    its unpacked copy (the folder of the ``__main__.py`` the launcher runs)."""
    unpacked = unpacked_dir(here) if os.path.isfile(here) else here
    if unpacked is not None:
        if unpacked != here:
            _forget_package()
        if not sys.path or sys.path[0] != unpacked:
            sys.path.insert(0, unpacked)
        # The copy is our private cache: bytecode there is the point, whatever
        # PYTHONDONTWRITEBYTECODE says about source trees.
        sys.dont_write_bytecode = False
        load_hot(unpacked)
    from host_executor.main import main

    _exit(main())
